//! Direct-message rules, given/when/then: conversations, texts, and receipts (each transition
//! decided once, statuses never going back).

use crate::account::Username;
use crate::dm::*;

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

#[test]
fn conversations_are_one_per_pair_and_never_with_oneself() {
    let (alice, bob) = (user("alice"), user("bob"));
    let ab = Conversation::new(&alice, &bob).unwrap();
    assert_eq!(ab, Conversation::new(&bob, &alice).unwrap());
    assert_eq!((ab.a(), ab.b()), (&alice, &bob));
    assert_eq!(ab.partner(&alice), Some(&bob));
    assert_eq!(ab.partner(&user("carol")), None);
    assert!(matches!(Conversation::new(&alice, &alice), Err(DmRejection::Invalid(_))));
    assert_eq!(Conversation::parse("alice", "bob", "rb"), Some((ab, Kind::Receipts(Side::B))));
    for (a, b, kind) in [
        ("bob", "alice", "m"),
        ("alice", "alice", "m"),
        ("alice", "bob", "x"),
        ("Al ice", "bob", "m"),
    ] {
        assert_eq!(Conversation::parse(a, b, kind), None, "{a} {b} {kind}");
    }
}

#[test]
fn texts() {
    let cases: &[(&str, bool)] = &[
        ("hi", true),
        ("  spaced  ", true),
        ("", false),
        ("   \n\t", false),
        (&"x".repeat(MAX_TEXT_CHARS), true),
        (&"x".repeat(MAX_TEXT_CHARS + 1), false),
        (&"é".repeat(MAX_TEXT_CHARS), true),
    ];
    for (text, ok) in cases {
        assert_eq!(check_text(text).is_ok(), *ok, "{:?}", &text[..text.len().min(10)]);
    }
}

/// Given receipts so far and the messages to the reader, when it reports a status up to a seq,
/// then these receipts are decided: (status, ids, delivered mark, read mark).
#[test]
fn receipts() {
    type Then = Vec<(Status, Vec<u128>, u64, u64)>;
    let to_bob = [(3, id(1)), (5, id(2)), (9, id(3))];
    let cases: Vec<(&str, Receipts, Status, u64, Then)> = vec![
        (
            "first delivery",
            Receipts::default(),
            Status::Delivered,
            5,
            vec![(Status::Delivered, vec![1, 2], 5, 0)],
        ),
        (
            "delivery of the rest",
            Receipts { delivered: 5, read: 0 },
            Status::Delivered,
            9,
            vec![(Status::Delivered, vec![3], 9, 0)],
        ),
        (
            "a second device reports the same delivery",
            Receipts { delivered: 5, read: 0 },
            Status::Delivered,
            5,
            vec![],
        ),
        (
            "an older delivery changes nothing",
            Receipts { delivered: 9, read: 0 },
            Status::Delivered,
            3,
            vec![],
        ),
        (
            "read after delivered",
            Receipts { delivered: 9, read: 0 },
            Status::Read,
            5,
            vec![(Status::Read, vec![1, 2], 9, 5)],
        ),
        (
            "read before delivered is delivered first",
            Receipts { delivered: 3, read: 0 },
            Status::Read,
            9,
            vec![(Status::Delivered, vec![2, 3], 9, 0), (Status::Read, vec![1, 2, 3], 9, 9)],
        ),
        ("read never goes back", Receipts { delivered: 9, read: 9 }, Status::Read, 5, vec![]),
        (
            "a seq past only the reader's own messages moves no status",
            Receipts { delivered: 9, read: 9 },
            Status::Read,
            12,
            vec![],
        ),
        ("sent is not a receipt", Receipts::default(), Status::Sent, 9, vec![]),
    ];
    for (name, given, status, up_to, then) in cases {
        let decided = decide_receipt(&user("bob"), given, status, up_to, &to_bob, 77);
        let got: Then = decided
            .iter()
            .map(|event| match event {
                DmEvent::Receipt { by, status, ids, delivered, read, at_ms } => {
                    assert_eq!((by.as_str(), *at_ms), ("bob", 77), "{name}");
                    (*status, ids.iter().map(|i| i.as_u128()).collect(), *delivered, *read)
                }
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        assert_eq!(got, then, "{name}");
        // What was decided, folded, is where the receipts now are.
        let folded = decided.iter().fold(given, |receipts, event| receipts.after(event));
        if let Some((_, _, delivered, read)) = then.last() {
            assert_eq!((folded.delivered, folded.read), (*delivered, *read), "{name}");
        }
    }
}

/// A report that covers more messages than a receipt may hold moves on the first ones; deciding
/// again on top of that moves on the rest.
#[test]
fn receipts_are_bounded() {
    let many: Vec<(u64, uuid::Uuid)> = (1..=600).map(|n| (n, id(u128::from(n as u32)))).collect();
    let first = decide_receipt(&user("bob"), Receipts::default(), Status::Read, 600, &many, 1);
    let sizes: Vec<usize> = first
        .iter()
        .map(|e| match e {
            DmEvent::Receipt { ids, .. } => ids.len(),
            DmEvent::Message { .. } => 0,
        })
        .collect();
    assert_eq!(sizes, [MAX_RECEIPT_IDS, MAX_RECEIPT_IDS]);
    let after = first.iter().fold(Receipts::default(), |r, e| r.after(e));
    assert_eq!((after.delivered, after.read), (256, 256));
    let json = serde_json::to_vec(&first[0]).unwrap();
    assert!(json.len() < 16 << 10, "{} bytes", json.len());
    let second = decide_receipt(&user("bob"), after, Status::Read, 600, &many, 2);
    let after = second.iter().fold(after, |r, e| r.after(e));
    assert_eq!((after.delivered, after.read), (512, 512));
}

#[test]
fn events_are_stored_as_tagged_json() {
    let event = DmEvent::Message {
        id: id(7),
        from: user("alice"),
        to: user("bob"),
        text: "hi".into(),
        at_ms: 5,
    };
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["type"], "message");
    assert_eq!(serde_json::from_value::<DmEvent>(json).unwrap(), event);
    assert!(serde_json::from_str::<DmEvent>(r#"{"type":"message","id":"x"}"#).is_err());
}
