//! The 4chan API's shapes, and what Chanshare takes from them. Pure: no I/O.

use events::{ItemKind, Media};
use serde::Deserialize;

/// A thread as `GET {api}/{board}/thread/{no}.json` returns it (only the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Thread {
    /// The posts, opening post first.
    pub posts: Vec<Post>,
}

/// One post. Flags are `1` or absent.
#[derive(Debug, Clone, Deserialize)]
pub struct Post {
    /// Post number.
    pub no: u64,
    /// Media id (16 digits today): needs 64 bits.
    #[serde(default)]
    pub tim: Option<i64>,
    /// Original filename, without extension.
    #[serde(default)]
    pub filename: Option<String>,
    /// Extension with its dot (`.webm`).
    #[serde(default)]
    pub ext: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub fsize: Option<u64>,
    /// Base64 MD5 of the file.
    #[serde(default)]
    pub md5: Option<String>,
    /// Width.
    #[serde(default)]
    pub w: Option<u32>,
    /// Height.
    #[serde(default)]
    pub h: Option<u32>,
    /// The file was deleted.
    #[serde(default)]
    pub filedeleted: Option<u8>,
    /// Spoilered (the file exists).
    #[serde(default)]
    pub spoiler: Option<u8>,
    /// The thread is archived (opening post only).
    #[serde(default)]
    pub archived: Option<u8>,
    /// The thread is closed (opening post only).
    #[serde(default)]
    pub closed: Option<u8>,
    /// Subject, HTML-escaped (usually only the opening post has one).
    #[serde(default)]
    pub sub: Option<String>,
    /// Comment, as HTML (`<br>`, quote links, `&gt;` greentext).
    #[serde(default)]
    pub com: Option<String>,
}

/// Extensions that become playlist items, with their content types.
pub const MEDIA_TYPES: [(&str, &str, ItemKind); 5] = [
    (".webm", "video/webm", ItemKind::Video),
    (".mp4", "video/mp4", ItemKind::Video),
    (".gif", "image/gif", ItemKind::Image),
    (".jpg", "image/jpeg", ItemKind::Image),
    (".png", "image/png", ItemKind::Image),
];

/// A media file of a resolved thread: what the cache verifies a download against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    /// Board.
    pub board: String,
    /// Media id.
    pub tim: i64,
    /// Extension with its dot.
    pub ext: String,
    /// Expected size.
    pub fsize: u64,
    /// Expected base64 MD5.
    pub md5: String,
}

/// What a thread resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Playable items in thread order.
    pub items: Vec<Media>,
    /// The files behind the items.
    pub files: Vec<MediaFile>,
    /// Archived or closed: it will not grow.
    pub archived: bool,
    /// A title for a room made from the thread: see [`Thread::title`].
    pub title: Option<String>,
}

impl Thread {
    /// The playable media of the thread, in thread order: posts with a file that was not
    /// deleted and an extension in [`MEDIA_TYPES`].
    pub fn resolve(&self, board: &str, thread: u64) -> Resolved {
        let mut items = Vec::new();
        let mut files = Vec::new();
        for post in &self.posts {
            let (Some(tim), Some(ext)) = (post.tim, post.ext.as_deref()) else { continue };
            if post.filedeleted == Some(1) || tim <= 0 {
                continue;
            }
            let Some((_, _, kind)) = MEDIA_TYPES.iter().find(|(e, _, _)| *e == ext) else {
                continue;
            };
            let (Some(fsize), Some(md5)) = (post.fsize, post.md5.clone()) else { continue };
            let name = post.filename.clone().unwrap_or_else(|| tim.to_string());
            items.push(Media {
                title: format!("{name}{ext}").chars().take(120).collect(),
                url: format!("/media/{board}/{tim}{ext}"),
                thumb_url: Some(format!("/media/{board}/{tim}s.jpg")),
                kind: *kind,
                size: Some(fsize),
                width: post.w,
                height: post.h,
                post_url: Some(format!(
                    "https://boards.4chan.org/{board}/thread/{thread}#p{}",
                    post.no
                )),
                md5: Some(md5.clone()),
                source_key: Some(format!("{board}/{tim}")),
            });
            files.push(MediaFile { board: board.to_owned(), tim, ext: ext.to_owned(), fsize, md5 });
        }
        let op = self.posts.first();
        let archived = op.is_some_and(|op| op.archived == Some(1) || op.closed == Some(1));
        Resolved { items, files, archived, title: self.title() }
    }

    /// The thread's title as plain text: the opening post's subject, or else the first words
    /// of its comment (at most [`COMMENT_TITLE_CHARS`] characters); `None` when both are empty.
    /// Always a valid room title: at most [`MAX_TITLE_CHARS`] characters, no control, bidi or
    /// invisible format characters.
    pub fn title(&self) -> Option<String> {
        let op = self.posts.first()?;
        let from = |html: Option<&str>, max| Some(html_title(html?, max)).filter(|t| !t.is_empty());
        from(op.sub.as_deref(), MAX_TITLE_CHARS)
            .or_else(|| from(op.com.as_deref(), COMMENT_TITLE_CHARS))
    }
}

/// The longest room title (the domain's limit).
pub const MAX_TITLE_CHARS: usize = 120;
/// A title taken from a comment keeps about this many characters, cut at a word.
pub const COMMENT_TITLE_CHARS: usize = 80;

/// 4chan HTML (`sub` or `com`) as a one-line title of at most `max_chars` characters: tags
/// dropped (`<br>` is a space), entities decoded, control and invisible format characters
/// removed, whitespace collapsed, and a longer text cut at a word boundary with an ellipsis.
pub fn html_title(html: &str, max_chars: usize) -> String {
    let text = decode_entities(&strip_tags(html));
    let mut words = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        let word: String = word.chars().filter(|c| !invisible(*c)).collect();
        if word.is_empty() {
            continue;
        }
        if !words.is_empty() {
            words.push(' ');
        }
        words.push_str(&word);
    }
    shorten(&words, max_chars)
}

/// `text` if it has at most `max_chars` characters; else its longest prefix that ends at a word
/// boundary and leaves room for `…` (a hard cut when the last boundary is before half of it).
fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    if max_chars == 0 {
        // No room even for the ellipsis (found by `props::html_titles_are_bounded`).
        return String::new();
    }
    let keep = max_chars - 1;
    let Some((cut, next)) = text.char_indices().nth(keep) else {
        return text.to_owned();
    };
    let prefix = &text[..cut];
    let at_word = if next == ' ' {
        prefix
    } else {
        match prefix.rfind(' ') {
            Some(space) if prefix[..space].chars().count() >= keep / 2 => &prefix[..space],
            _ => prefix,
        }
    };
    let trimmed = at_word.trim_end_matches(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                ',' | ';' | ':' | '-' | '\u{2013}' | '\u{2014}' | '\u{200c}' | '\u{200d}'
            )
    });
    format!("{trimmed}\u{2026}")
}

/// Drops HTML tags; `<br>` (and the ends of block elements) become a space, `<wbr>` nothing.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            // A lone `<` is text (the API escapes it, but be lenient).
            rest = &rest[open..];
            break;
        };
        let tag = rest[open + 1..open + close].trim_start_matches('/').trim_start();
        let name: String = tag
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if matches!(name.as_str(), "br" | "p" | "div" | "li" | "pre" | "tr") {
            out.push(' ');
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Decodes `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` `&nbsp;` and numeric references; anything
/// else (an unknown name, a reference to a control character or a surrogate) stays as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // The longest reference decoded is `&#x10ffff;`: look for its `;` in the next 10 bytes.
        let semi = rest.bytes().skip(1).take(10).position(|b| b == b';');
        let decoded = semi.and_then(|semi| {
            let name = &rest[1..=semi];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                "nbsp" => ' ',
                _ => {
                    let code = match name.strip_prefix('#') {
                        Some(hex) if hex.starts_with(['x', 'X']) => {
                            u32::from_str_radix(&hex[1..], 16).ok()?
                        }
                        Some(decimal) => decimal.parse().ok()?,
                        None => return None,
                    };
                    char::from_u32(code).filter(|c| !c.is_control())?
                }
            };
            Some((c, semi + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Characters a title must not carry: controls, bidirectional overrides and isolates, and
/// invisible format characters (zero-width space, word joiner, BOM, soft hyphen, …). The
/// zero-width (non-)joiners stay: emoji sequences and Persian or Indic words need them.
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}' | '\u{200b}' | '\u{200e}' | '\u{200f}'
            | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{feff}'
            | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// The board list as `GET {api}/boards.json` returns it (only the fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Boards {
    /// Every board.
    pub boards: Vec<Board>,
}

/// One board of the list.
#[derive(Debug, Clone, Deserialize)]
pub struct Board {
    /// Its name, `wsg` for `/wsg/`.
    pub board: String,
    /// `1` for a worksafe board; absent counts as not worksafe.
    #[serde(default)]
    pub ws_board: u8,
}

impl Boards {
    /// Each well-formed board name (see [`valid_board`]) with whether it is worksafe; entries
    /// with another name are left out.
    pub fn worksafe_by_name(&self) -> Vec<(String, bool)> {
        self.boards
            .iter()
            .filter(|b| valid_board(&b.board))
            .map(|b| (b.board.clone(), b.ws_board == 1))
            .collect()
    }
}

/// Whether `board` is a board name: `[a-z0-9]{1,10}`.
pub fn valid_board(board: &str) -> bool {
    (1..=10).contains(&board.len())
        && board.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A media path's file part: `{tim}{ext}` or the thumbnail `{tim}s.jpg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaName {
    /// The file itself.
    File {
        /// Media id.
        tim: i64,
        /// Extension with its dot.
        ext: &'static str,
    },
    /// Its thumbnail.
    Thumb {
        /// Media id.
        tim: i64,
    },
}

impl MediaName {
    /// Parses `1743100200123456.webm` or `1743100200123456s.jpg`; anything else is refused.
    pub fn parse(name: &str) -> Option<MediaName> {
        if let Some(digits) = name.strip_suffix("s.jpg") {
            return parse_tim(digits).map(|tim| MediaName::Thumb { tim });
        }
        let dot = name.find('.')?;
        let (digits, ext) = name.split_at(dot);
        let (ext, _, _) = MEDIA_TYPES.iter().find(|(e, _, _)| *e == ext)?;
        parse_tim(digits).map(|tim| MediaName::File { tim, ext })
    }

    /// The object key and content type for `board`.
    pub fn key(&self, board: &str) -> (String, &'static str) {
        match self {
            MediaName::File { tim, ext } => {
                let content_type = MEDIA_TYPES
                    .iter()
                    .find(|(e, _, _)| e == ext)
                    .map_or("application/octet-stream", |t| t.1);
                (format!("{board}/{tim}{ext}"), content_type)
            }
            MediaName::Thumb { tim } => (format!("{board}/{tim}s.jpg"), "image/jpeg"),
        }
    }
}

fn parse_tim(digits: &str) -> Option<i64> {
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|tim| *tim > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_names() {
        let cases: [(&str, Option<MediaName>); 14] = [
            (
                "1743100200123456.webm",
                Some(MediaName::File { tim: 1743100200123456, ext: ".webm" }),
            ),
            ("1743100200123456.mp4", Some(MediaName::File { tim: 1743100200123456, ext: ".mp4" })),
            ("1743100200123456s.jpg", Some(MediaName::Thumb { tim: 1743100200123456 })),
            ("1.png", Some(MediaName::File { tim: 1, ext: ".png" })),
            ("1743100200123456.pdf", None),
            ("1743100200123456.WEBM", None),
            ("..%2fetc.webm", None),
            ("../1.webm", None),
            ("1.webm.exe", None),
            ("abc.webm", None),
            ("-1.webm", None),
            ("0.webm", None),
            ("99999999999999999999.webm", None),
            (".webm", None),
        ];
        for (name, expected) in cases {
            assert_eq!(MediaName::parse(name), expected, "{name}");
        }
    }

    #[test]
    fn boards() {
        for good in ["wsg", "gif", "3", "abcdefghij"] {
            assert!(valid_board(good), "{good}");
        }
        for bad in ["", "WSG", "w/g", "..", "abcdefghijk", "wsg%2f", "ws g"] {
            assert!(!valid_board(bad), "{bad}");
        }
    }

    #[test]
    fn board_lists_in_the_real_shape() {
        let list: Boards = serde_json::from_str(
            r#"{"boards": [
                {"board": "wsg", "title": "Worksafe GIF", "ws_board": 1, "per_page": 15,
                 "cooldowns": {"threads": 600}, "webm_audio": 1},
                {"board": "gif", "title": "Adult GIF", "ws_board": 0},
                {"board": "old", "title": "no flag"},
                {"board": "../x", "title": "hostile", "ws_board": 1},
                {"board": "", "ws_board": 1}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            list.worksafe_by_name(),
            [("wsg".to_owned(), true), ("gif".to_owned(), false), ("old".to_owned(), false)]
        );
        for text in [
            "",
            "{}",
            "[]",
            r#"{"boards": {}}"#,
            r#"{"boards": [{"title": "no name"}]}"#,
            r#"{"boards": [{"board": "wsg", "ws_board": "1"}]}"#,
            r#"{"boards": [{"board": "wsg", "ws_board": 300}]}"#,
        ] {
            assert!(serde_json::from_str::<Boards>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn hostile_thread_json_is_an_error_not_a_panic() {
        for text in [
            "",
            "{}",
            "[]",
            r#"{"posts": 3}"#,
            r#"{"posts": [{"no": "x"}]}"#,
            r#"{"posts": [{"no": 1, "tim": 1e400}]}"#,
        ] {
            assert!(serde_json::from_str::<Thread>(text).is_err(), "{text}");
        }
        let odd: Thread = serde_json::from_str(r#"{"posts": [{"no": 1, "tim": -5, "ext": ".webm", "fsize": 1, "md5": "x"},
            {"no": 2, "tim": 9, "ext": ".webm"}, {"no": 3, "tim": 10, "ext": "/../x", "fsize": 1, "md5": "x"}]}"#).unwrap();
        assert!(odd.resolve("wsg", 1).items.is_empty());
    }

    fn thread(mut op: serde_json::Value) -> Thread {
        op["no"] = 1.into();
        serde_json::from_value(serde_json::json!({"posts": [op, {"no": 2, "sub": "a reply"}]}))
            .unwrap()
    }

    #[test]
    fn thread_titles_prefer_the_subject_then_the_comment() {
        let cases = [
            (serde_json::json!({"sub": "YGYL thread", "com": "Post them"}), Some("YGYL thread")),
            (
                serde_json::json!({"sub": "Tom &amp; Jerry&#039;s &quot;best&quot;"}),
                Some("Tom & Jerry's \"best\""),
            ),
            (
                serde_json::json!({"sub": "  ", "com": "Webms with sound.<br>No reposts"}),
                Some("Webms with sound. No reposts"),
            ),
            (serde_json::json!({"sub": "<b></b>", "com": "&gt;be me"}), Some(">be me")),
            (serde_json::json!({"com": "<br><br>"}), None),
            (serde_json::json!({"sub": "\u{202e}\u{200b}", "com": ""}), None),
            (serde_json::json!({}), None),
        ];
        for (op, expected) in cases {
            assert_eq!(thread(op.clone()).title().as_deref(), expected, "{op}");
        }
        assert_eq!(Thread { posts: Vec::new() }.title(), None);
        // The title reaches the resolution.
        let resolved = thread(serde_json::json!({"sub": "s"})).resolve("wsg", 1);
        assert_eq!(resolved.title.as_deref(), Some("s"));
    }

    #[test]
    fn comments_become_one_line_of_plain_text() {
        let cases = [
            (
                "Webms with sound.<br>No reposts, no loud ones.",
                "Webms with sound. No reposts, no loud ones.",
            ),
            (
                "<a href=\"#p5830000\" class=\"quotelink\">&gt;&gt;5830000</a><br>lmao",
                ">>5830000 lmao",
            ),
            ("<span class=\"quote\">&gt;implying</span><br/>kek", ">implying kek"),
            ("line one<BR>line two< br >three", "line one line two three"),
            ("long<wbr>word", "longword"),
            ("tabs\tand\n\nnewlines   and  spaces", "tabs and newlines and spaces"),
            ("&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"),
            (
                "&#x41;&#66;&#0067; &amp;amp; &bogus; & alone &#1114112; &#0; &#x7f; &#;",
                "ABC &amp; &bogus; & alone &#1114112; &#0; &#x7f; &#;",
            ),
            ("&nbsp;&nbsp;padded&#160;", "padded"),
            ("a < b", "a < b"),
            ("unclosed <tag", "unclosed <tag"),
            (
                "\u{202e}evil\u{202c} \u{2066}iso\u{2069} zero\u{200b}width \u{feff}bom soft\u{ad}hyphen",
                "evil iso zerowidth bom softhyphen",
            ),
            ("bell\u{7}char &#x202E;rtl", "bellchar rtl"),
            (
                "emoji 👨\u{200d}👩\u{200d}👧 and می\u{200c}خواهم",
                "emoji 👨\u{200d}👩\u{200d}👧 and می\u{200c}خواهم",
            ),
            ("кот и пылесос ねこ", "кот и пылесос ねこ"),
        ];
        for (html, expected) in cases {
            assert_eq!(html_title(html, 200), expected, "{html:?}");
        }
    }

    #[test]
    fn long_comments_are_cut_at_a_word_with_an_ellipsis() {
        let words = "the quick brown fox jumps over the lazy dog ".repeat(5);
        // The 80th character is inside "lazy": the cut is before it.
        assert_eq!(
            html_title(&words, 80),
            "the quick brown fox jumps over the lazy dog the quick brown fox jumps over the…"
        );
        // Exactly at the limit: kept whole; one more word: cut.
        let eighty = "x".repeat(75) + " abcd";
        assert_eq!(html_title(&eighty, 80), eighty);
        assert_eq!(html_title(&(eighty.clone() + " e"), 80), format!("{}…", "x".repeat(75)));
        // No space in reach (a URL, Japanese): a hard cut at the limit.
        let japanese = "猫".repeat(100);
        assert_eq!(html_title(&japanese, 80), format!("{}…", "猫".repeat(79)));
        let url = format!("see https://example.com/{}", "a".repeat(200));
        let cut = html_title(&url, 80);
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.starts_with("see https://"), "{cut}");
        // Trailing punctuation and joiners do not sit before the ellipsis.
        let commas = format!("{}, more words here", "w".repeat(70));
        assert_eq!(html_title(&commas, 75), format!("{}…", "w".repeat(70)));
        // Every title from the hostile fixture characters is a valid room title.
        for html in [&"&#x202e;".repeat(200), &"a\u{300}".repeat(200), &"&amp;".repeat(200)] {
            let title = html_title(html, MAX_TITLE_CHARS);
            assert!(title.chars().count() <= MAX_TITLE_CHARS, "{title}");
            assert!(!title.chars().any(|c| c.is_control() || invisible(c)), "{title:?}");
        }
    }
}
