//! The binary codec: round trips, a golden encoding of schema 1, and hostile bytes.

use proptest::prelude::*;

use super::fixtures::*;
use crate::codec::{self, CodecError};
use crate::*;

/// One commit holding every event variant with every field set.
pub(super) fn every_event() -> Commit {
    let playback = Playback {
        item_id: Some(item(2)),
        playing: true,
        position_ms: 61_250,
        anchor_ms: T0 + 5,
        rate: Rate::from_factor(1.5).unwrap(),
    };
    let events = vec![
        Event::RoomCreated {
            room_id: room(),
            title: "ünïcode title".into(),
            source: Source::Chan { board: "wsg".into(), thread: 5812345 },
            settings: Settings { control: Control::Host, listed: false },
        },
        Event::ItemsAdded {
            items: vec![
                chan_media(1743100200123456).with_id_for_test(item(1)),
                Media {
                    title: "clip.mp4".into(),
                    url: "https://example.com/clip.mp4".into(),
                    thumb_url: None,
                    kind: ItemKind::Image,
                    size: None,
                    width: None,
                    height: None,
                    post_url: None,
                    md5: None,
                    source_key: None,
                }
                .with_id_for_test(item(2)),
            ],
        },
        Event::ItemRemoved { item_id: item(1) },
        Event::ItemMoved { item_id: item(2), to: 0 },
        Event::PlaybackChanged { cause: PlaybackCause::Seek, playback },
        Event::MemberJoined { member_id: id(&alice()), name: "alice".into() },
        Event::MemberReturned { member_id: id(&alice()) },
        Event::MemberWentOffline { member_id: id(&alice()) },
        Event::MemberLeft { member_id: id(&bob()), reason: RemovalReason::Kicked },
        Event::MemberRenamed { member_id: id(&alice()), name: "al".into() },
        Event::HostChanged { member_id: Some(id(&alice())) },
        Event::HostChanged { member_id: None },
        Event::ChatPosted {
            message: ChatMessage {
                id: MessageId::nth(1),
                member_id: id(&alice()),
                text: "<img src=x onerror=alert(1)>".into(),
                at_ms: T0 + 7,
            },
        },
        Event::ChatDeleted { message_id: MessageId::nth(1) },
        Event::ControlChanged { control: Control::Everyone },
        Event::ListedChanged { listed: true },
        Event::RoomClosed { reason: CloseReason::Idle },
        // Appended after schema 1 was first frozen (GOLDEN_ADDITIONS).
        Event::MemberAddressSeen { member_id: id(&alice()), address: "fp-0123".into() },
        Event::ImageSecondsChanged { seconds: 9 },
        Event::ShuffleChanged { shuffle: true },
        Event::LoopChanged { looping: true },
        // Appended later still (GOLDEN_ACCOUNTS).
        Event::AccountBound {
            member_id: id(&alice()),
            account: AccountRef {
                account_id: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef),
                username: Username::parse("alice_1").unwrap(),
            },
            owner: true,
        },
        // Appended with rewatch (GOLDEN_REWATCH).
        Event::RewatchChanged { rewatch: false },
    ];
    Commit {
        room: room(),
        version: 300,
        command_id: CommandId::derived(
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, b"golden"),
            "commit",
        ),
        actor: alice(),
        at_ms: T0 + 9,
        events,
    }
}

trait WithId {
    fn with_id_for_test(self, id: ItemId) -> Item;
}
impl WithId for Media {
    fn with_id_for_test(self, item_id: ItemId) -> Item {
        Item { item_id, media: self }
    }
}

#[test]
fn every_event_round_trips() {
    let commit = every_event();
    let bytes = codec::encode(&commit).unwrap();
    assert_eq!(codec::decode(&bytes).unwrap(), commit);
    assert_eq!(codec::schema_of(&bytes).unwrap(), codec::SCHEMA);
    // Each event alone too, so a variant that only works in company is caught.
    for event in commit.events.iter().cloned() {
        let single = Commit { events: vec![event], ..commit.clone() };
        assert_eq!(codec::decode(&codec::encode(&single).unwrap()).unwrap(), single);
    }
}

#[test]
fn every_event_variant_is_in_the_golden_commit() {
    let names: std::collections::BTreeSet<_> =
        every_event().events.iter().map(Event::name).collect();
    assert_eq!(names.len(), 22, "add the new event variant to every_event(): {names:?}");
}

const GOLDEN: &str = include_str!("golden/schema1.hex");
/// The variants appended to schema 1 later, in a commit of their own.
const GOLDEN_ADDITIONS: &str = include_str!("golden/schema1-additions.hex");
/// The account variant, appended after those.
const GOLDEN_ACCOUNTS: &str = include_str!("golden/schema1-accounts.hex");
const GOLDEN_REWATCH: &str = include_str!("golden/schema1-rewatch.hex");
/// How many events `every_event()` had when schema 1 was frozen, and after the additions.
const FROZEN_EVENTS: usize = 17;
const ADDED_EVENTS: usize = 21;
const ACCOUNT_EVENTS: usize = 22;

/// The commits the golden files hold: schema 1 as frozen, and each batch of variants appended since.
fn golden_commits() -> [(Commit, &'static str, &'static str); 4] {
    let all = every_event();
    let batch = |range: std::ops::Range<usize>| Commit {
        events: all.events[range].to_vec(),
        ..all.clone()
    };
    [
        (batch(0..FROZEN_EVENTS), GOLDEN, "schema1.hex"),
        (batch(FROZEN_EVENTS..ADDED_EVENTS), GOLDEN_ADDITIONS, "schema1-additions.hex"),
        (batch(ADDED_EVENTS..ACCOUNT_EVENTS), GOLDEN_ACCOUNTS, "schema1-accounts.hex"),
        (batch(ACCOUNT_EVENTS..all.events.len()), GOLDEN_REWATCH, "schema1-rewatch.hex"),
    ]
}

/// Schema 1 must keep decoding forever: if this fails, the change broke the stored format.
/// Bump the schema and upcast instead (see `codec` docs). Appended variants get their own
/// golden file; regenerate only for a new schema or new variants:
/// `CHANSHARE_BLESS=1 cargo test -p events golden`.
#[test]
fn golden_bytes_of_schema_1() {
    for (commit, golden, file) in golden_commits() {
        let bytes = codec::encode(&commit).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if std::env::var_os("CHANSHARE_BLESS").is_some() {
            let path = format!("{}/src/tests/golden/{file}", env!("CARGO_MANIFEST_DIR"));
            if !golden.trim().is_empty() && golden.trim() != hex {
                panic!("{file} exists with other bytes: a stored format would change");
            }
            std::fs::write(path, &hex).unwrap();
            continue;
        }
        assert_eq!(hex, golden.trim(), "the encoding in {file} changed");
        let golden: Vec<u8> = (0..golden.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&golden.trim()[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(codec::decode(&golden).unwrap(), commit);
    }
}

#[test]
fn unknown_schema_and_trailing_bytes_are_errors() {
    let mut bytes = codec::encode(&every_event()).unwrap();
    bytes[0] = 9;
    assert_eq!(codec::decode(&bytes), Err(CodecError::UnknownSchema(9)));
    let mut bytes = codec::encode(&every_event()).unwrap();
    bytes.push(0);
    assert!(matches!(codec::decode(&bytes), Err(CodecError::Corrupt(_))));
    assert!(matches!(codec::decode(&[]), Err(CodecError::Corrupt(_))));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = codec::encode(&every_event()).unwrap();
    for len in 0..bytes.len() {
        assert!(codec::decode(&bytes[..len]).is_err(), "truncated to {len} decoded");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decodes_consistently(&bytes)?;
    }

    #[test]
    fn corrupted_commits_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = codec::encode(&every_event()).unwrap();
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        decodes_consistently(&bytes)?;
    }
}

/// Whatever the bytes, decoding returns (no panic), and whatever does decode re-encodes to a
/// payload that decodes to the same commit.
fn decodes_consistently(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(commit) = codec::decode(bytes) {
        let again = codec::decode(&codec::encode(&commit).unwrap()).unwrap();
        prop_assert_eq!(again, commit);
    }
    Ok(())
}
