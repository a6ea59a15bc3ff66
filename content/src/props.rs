//! Parser properties: whatever a client or 4chan sends, the parsers answer (never panic), and
//! what they accept means what it says.

use proptest::prelude::*;

use crate::chan::{MediaName, Thread, html_title};
use crate::range::{Requested, parse};

/// Any JSON value, nested a few levels.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "posts",
                    "no",
                    "tim",
                    "filename",
                    "ext",
                    "fsize",
                    "md5",
                    "w",
                    "h",
                    "sub",
                    "com",
                    "filedeleted",
                    "archived",
                    "closed",
                    "x",
                ]),
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn range_headers_never_panic_and_partials_lie_within_the_file(header in ".{0,60}", size in any::<u64>()) {
        if let Requested::Partial { start, end } = parse(Some(&header), size) {
            prop_assert!(start < end && end <= size, "{header:?} of {size}: {start}..{end}");
        }
    }

    #[test]
    fn a_valid_range_is_served_as_asked(a in 0u64..10_000, len in 0u64..10_000, size in 1u64..20_000) {
        let b = a + len;
        let got = parse(Some(&format!("bytes={a}-{b}")), size);
        if a < size {
            prop_assert_eq!(got, Requested::Partial { start: a, end: (b + 1).min(size) });
        } else {
            prop_assert_eq!(got, Requested::Unsatisfiable);
        }
    }

    #[test]
    fn media_names_never_panic_and_round_trip(name in ".{0,40}", tim in 0i64..i64::MAX, thumb in any::<bool>()) {
        let _ = MediaName::parse(&name);
        let name = if thumb { format!("{tim}s.jpg") } else { format!("{tim}.webm") };
        let parsed = MediaName::parse(&name);
        prop_assert!(parsed.is_some(), "{name}");
        let (key, _) = parsed.unwrap_or(MediaName::Thumb { tim: 0 }).key("wsg");
        prop_assert_eq!(key, format!("wsg/{name}"));
    }

    #[test]
    fn hostile_thread_json_resolves_or_is_refused_never_panics(value in json()) {
        if let Ok(thread) = serde_json::from_value::<Thread>(value) {
            let resolved = thread.resolve("wsg", 1);
            let _ = thread.title();
            for item in &resolved.items {
                prop_assert!(item.url.starts_with("/media/wsg/"), "{}", item.url);
            }
        }
    }

    #[test]
    fn html_titles_are_bounded(html in ".{0,300}", max in 0usize..100) {
        prop_assert!(html_title(&html, max).chars().count() <= max);
    }
}
