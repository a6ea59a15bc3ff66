//! Property tests: folding any sequence of accepted commands keeps the room's invariants.

use proptest::prelude::*;

use super::fixtures::*;
use crate::*;

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        10 => (0..5u8).prop_map(|n| member(&format!("m{n}"))),
        1 => Just(Actor::System),
    ]
}

fn item_id() -> impl Strategy<Value = ItemId> {
    (1..12u64).prop_map(ItemId::nth)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        2 => (0..4usize).prop_map(create_urls),
        2 => prop::collection::vec(1..20u64, 0..4).prop_map(|t| create_chan(&t)),
        6 => ("[a-z]{0,6}", proptest::option::of("a[0-3]")).prop_map(|(name, address)| Command::Join { name, address, account: None }),
        2 => prop_oneof![Just(LeaveReason::Left), Just(LeaveReason::Timeout), Just(LeaveReason::Disconnected)].prop_map(|reason| Command::Leave { reason }),
        3 => (0..3usize).prop_map(|n| Command::AddItems { urls: urls(n) }),
        2 => item_id().prop_map(|item_id| Command::RemoveItem { item_id }),
        2 => (item_id(), 0..6u32).prop_map(|(item_id, to)| Command::MoveItem { item_id, to }),
        4 => Just(Command::Play),
        3 => Just(Command::Pause),
        3 => (0..100_000u64).prop_map(|position_ms| Command::Seek { position_ms }),
        3 => proptest::option::of(item_id()).prop_map(|expected_item_id| Command::Next { expected_item_id }),
        2 => proptest::option::of(item_id()).prop_map(|expected_item_id| Command::Previous { expected_item_id }),
        2 => item_id().prop_map(|item_id| Command::Jump { item_id }),
        2 => (0.0..5.0f64).prop_map(|rate| Command::SetRate { rate }),
        2 => "[a-z ]{0,8}".prop_map(|name| Command::Rename { name }),
        3 => "[a-z ]{0,8}".prop_map(|text| Command::Chat { text }),
        1 => (1..6u64).prop_map(|n| Command::DeleteChat { message_id: MessageId::nth(n) }),
        1 => prop_oneof![Just(Control::Host), Just(Control::Everyone)].prop_map(|control| Command::SetControl { control }),
        1 => any::<bool>().prop_map(|listed| Command::SetListed { listed }),
        1 => (0..5u8).prop_map(|n| Command::Kick { member_id: id(&member(&format!("m{n}"))) }),
        2 => (0..5u8).prop_map(|n| Command::TransferHost { member_id: id(&member(&format!("m{n}"))) }),
        1 => prop::collection::vec(1..25u64, 0..5)
            .prop_map(|t| Command::RefreshThread { items: t.into_iter().map(chan_media).collect() }),
        1 => Just(Command::Close),
        1 => any::<bool>().prop_map(|shuffle| Command::SetShuffle { shuffle }),
        1 => any::<bool>().prop_map(|looping| Command::SetLoop { looping }),
        1 => any::<bool>().prop_map(|rewatch| Command::SetRewatch { rewatch }),
        1 => (0..700u32).prop_map(|seconds| Command::SetImageSeconds { seconds }),
    ]
}

/// The `type`s the JSON Schema of [`Command`] lists.
fn schema_types() -> &'static std::collections::BTreeSet<String> {
    static TYPES: std::sync::LazyLock<std::collections::BTreeSet<String>> =
        std::sync::LazyLock::new(command_types);
    &TYPES
}

fn command_types() -> std::collections::BTreeSet<String> {
    let schema = serde_json::to_value(schemars::schema_for!(Command)).unwrap_or_default();
    schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|variant| variant["properties"]["type"]["const"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_event_schema_describes_what_clients_get() {
    let schema = serde_json::to_value(schemars::schema_for!(Event)).unwrap_or_default();
    let types: Vec<&str> = schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|variant| variant["properties"]["type"]["const"].as_str())
        .collect();
    assert!(types.contains(&"chat_posted") && types.contains(&"room_created"), "{types:?}");
    assert!(!types.contains(&"member_address_seen"), "a private event is never sent: {types:?}");
}

#[test]
fn the_command_schema_describes_what_a_socket_may_send() {
    let types = schema_types();
    assert_eq!(types.len(), 22, "{types:?}");
    assert!(!types.contains("create_room") && types.contains("chat"), "{types:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The schema (what the API documents say a client may send) lists a command exactly when a
    /// socket accepts it.
    #[test]
    fn a_command_is_in_the_schema_when_a_client_may_send_it(command in command()) {
        prop_assert_eq!(schema_types().contains(command.name()), command.is_client_command());
    }

    #[test]
    fn any_bytes_decode_to_a_commit_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(commit) = codec::decode(&bytes) {
            // What decodes encodes back to the same commit.
            let again = codec::decode(&codec::encode(&commit).unwrap()).unwrap();
            prop_assert_eq!(again, commit);
        }
    }

    #[test]
    fn any_text_parses_to_a_command_or_an_error(text in ".{0,200}") {
        json::from_str::<Command>(&text).ok();
    }

    #[test]
    fn accepted_commands_keep_invariants(steps in prop::collection::vec((actor(), command(), 0..5000u64), 1..120)) {
        let mut state = RoomState::default();
        let mut log: Vec<Commit> = Vec::new();
        let mut now = T0;
        // Most sequences start in a live room, so the random part exercises real rules.
        let prefix = [
            (member("m0"), create_urls(2), 0),
            (member("m1"), join("one"), 0),
            (member("m2"), join("two"), 0),
        ];
        for (actor, command, pause_ms) in prefix.into_iter().chain(steps) {
            now += pause_ms;
            let ctx = Ctx { entropy: now, ..Ctx::new(room(), actor.clone(), now) };
            let Ok(events) = decide(&state, command, &ctx) else { continue };
            if events.is_empty() {
                continue;
            }
            let version = state.version + 1;
            let commit = commit(version, actor, now, events);
            state = state.apply(&commit);
            log.push(commit);
            if let Err(broken) = state.check_invariants() {
                prop_assert!(false, "{broken} after {:?}", log.last());
            }
            if let Some(current) = &state.playback.item_id {
                prop_assert!(state.item_index(current).is_some());
            }
            prop_assert!(state.playback.position_at(now) >= state.playback.position_ms);
        }
        // Versions are contiguous, and the log (through the codec) folds to the same state.
        for (n, commit) in log.iter().enumerate() {
            prop_assert_eq!(commit.version, n as u64 + 1);
        }
        let refolded = log
            .iter()
            .map(|c| codec::decode(&codec::encode(c).unwrap()).unwrap())
            .fold(RoomState::default(), |s, c| s.apply(&c));
        prop_assert_eq!(refolded, state);
    }
}
