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
        Resolved { items, files, archived }
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
}
