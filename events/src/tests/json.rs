//! The pinned JSON forms (DESIGN §5).

use serde_json::json;

use super::fixtures::*;
use crate::*;

fn parse(value: serde_json::Value) -> Result<Command, serde_json::Error> {
    json::from_value(value)
}

#[test]
fn pinned_command_shapes_parse() {
    let cases = [
        (json!({"type": "play"}), Command::Play),
        (json!({"type": "pause"}), Command::Pause),
        (json!({"type": "seek", "position_ms": 5000}), Command::Seek { position_ms: 5000 }),
        (json!({"type": "next"}), Command::Next { expected_item_id: None }),
        (
            json!({"type": "next", "expected_item_id": "i3"}),
            Command::Next { expected_item_id: Some(item(3)) },
        ),
        (json!({"type": "previous"}), Command::Previous { expected_item_id: None }),
        (json!({"type": "jump", "item_id": "i2"}), Command::Jump { item_id: item(2) }),
        (json!({"type": "set_rate", "rate": 1.25}), Command::SetRate { rate: 1.25 }),
        (
            json!({"type": "add_items", "urls": ["https://x/y.mp4"]}),
            Command::AddItems { urls: vec!["https://x/y.mp4".into()] },
        ),
        (json!({"type": "remove_item", "item_id": "i1"}), Command::RemoveItem { item_id: item(1) }),
        (
            json!({"type": "move_item", "item_id": "i1", "to": 2}),
            Command::MoveItem { item_id: item(1), to: 2 },
        ),
        (json!({"type": "chat", "text": "hi"}), Command::Chat { text: "hi".into() }),
        (
            json!({"type": "delete_chat", "message_id": "c4"}),
            Command::DeleteChat { message_id: MessageId::nth(4) },
        ),
        (json!({"type": "rename", "name": "bo"}), Command::Rename { name: "bo".into() }),
        (
            json!({"type": "set_control", "control": "host"}),
            Command::SetControl { control: Control::Host },
        ),
        (
            json!({"type": "set_control", "control": "everyone"}),
            Command::SetControl { control: Control::Everyone },
        ),
        (
            json!({"type": "kick", "member_id": "mabc"}),
            Command::Kick { member_id: id(&member("mabc")) },
        ),
        (
            json!({"type": "transfer_host", "member_id": "mabc"}),
            Command::TransferHost { member_id: id(&member("mabc")) },
        ),
        (json!({"type": "close"}), Command::Close),
        (
            json!({"type": "set_image_seconds", "seconds": 8}),
            Command::SetImageSeconds { seconds: 8 },
        ),
        (json!({"type": "set_shuffle", "shuffle": true}), Command::SetShuffle { shuffle: true }),
        (json!({"type": "set_loop", "loop": false}), Command::SetLoop { looping: false }),
        (json!({"type": "set_rewatch", "rewatch": false}), Command::SetRewatch { rewatch: false }),
    ];
    for (value, expected) in cases {
        let command = parse(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(command, expected);
        assert!(command.is_client_command());
        assert_eq!(json::to_value(&command).unwrap()["type"], value["type"]);
        assert_eq!(command.name(), value["type"]);
    }
}

#[test]
fn malformed_commands_are_errors() {
    let bad = [
        json!("play"),
        json!({}),
        json!({"type": 3}),
        json!({"type": "dance"}),
        json!({"type": "play", "extra": 1}),
        json!({"type": "seek"}),
        json!({"type": "seek", "position_ms": -5}),
        json!({"type": "seek", "position_ms": "5"}),
        json!({"type": "jump", "item_id": "../x"}),
        json!({"type": "kick", "member_id": "@system"}),
        json!({"type": "set_control", "control": "anarchy"}),
        json!({"type": "set_image_seconds", "seconds": -1}),
        json!({"type": "set_image_seconds", "seconds": 1.5}),
        json!({"type": "set_loop", "looping": true}),
        json!({"type": "set_shuffle"}),
    ];
    for value in bad {
        assert!(parse(value.clone()).is_err(), "{value} parsed");
    }
}

#[test]
fn commit_json_has_tagged_events_and_round_trips() {
    let commit = super::codec::every_event();
    let value = serde_json::to_value(&commit).unwrap();
    assert_eq!(value["events"][0]["type"], "room_created");
    assert_eq!(value["events"][0]["source"], json!({"chan": {"board": "wsg", "thread": 5812345}}));
    assert_eq!(value["events"][1]["items"][0]["item_id"], "i1");
    assert_eq!(value["events"][1]["items"][0]["url"], "/media/wsg/1743100200123456.webm");
    assert_eq!(value["events"][4]["playback"]["rate"], 1.5);
    assert_eq!(value["actor"], "malice");
    let back: Commit = serde_json::from_value(value).unwrap();
    assert_eq!(back, commit);
}

#[test]
fn system_actor_is_a_string_no_member_can_have() {
    assert_eq!(serde_json::to_value(Actor::System).unwrap(), "@system");
    assert_eq!(serde_json::from_value::<Actor>(json!("@system")).unwrap(), Actor::System);
}

#[test]
fn state_view_has_the_pinned_fields() {
    let (state, _) = fold(&with(vec![(alice(), Command::Chat { text: "hi".into() })]));
    let view = serde_json::to_value(state.view()).unwrap();
    for key in [
        "room_id", "title", "closed", "settings", "playlist", "playback", "members", "chat",
        "version",
    ] {
        assert!(view.get(key).is_some(), "missing {key}");
    }
    assert_eq!(
        view["settings"],
        json!({"control": "everyone", "listed": true, "image_seconds": 6, "shuffle": false, "loop": false, "rewatch": true})
    );
    assert_eq!(
        view["members"][0],
        json!({"member_id": "mhost", "name": "host", "role": "host", "online": true})
    );
    assert_eq!(view["members"][1]["role"], "member");
    let item = &view["playlist"][0];
    for key in ["item_id", "title", "url", "thumb_url", "kind", "post_url"] {
        assert!(item.get(key).is_some(), "item lacks {key}");
    }
    assert_eq!(item["kind"], "video");
    for key in ["item_id", "playing", "position_ms", "anchor_ms", "rate"] {
        assert!(view["playback"].get(key).is_some(), "playback lacks {key}");
    }
    assert_eq!(view["playback"]["rate"], 1.0);
    assert_eq!(view["chat"][0]["text"], "hi");
    for key in ["id", "member_id", "text", "at_ms"] {
        assert!(view["chat"][0].get(key).is_some(), "chat lacks {key}");
    }
}

#[test]
fn readable_room_ids_are_valid() {
    for entropy in [0, 1, u128::MAX, 0xdead_beef, 1 << 40, 1 << 100] {
        let room = RoomId::readable(entropy);
        assert_eq!(RoomId::new(room.as_str()), Ok(room.clone()));
        assert_eq!(room.as_str().split('-').count(), 4, "{room}");
    }
    assert_ne!(RoomId::readable(1), RoomId::readable(2));
    // A room's link is its only secret: at least 64 bits of it cannot be guessed (checked at
    // compile time in `ids`), and the highest of them shows in the id.
    assert_ne!(RoomId::readable(1 << 63), RoomId::readable(0));
    assert_ne!(RoomId::readable(1 << 68), RoomId::readable(0));
    assert!(MemberId::new(MemberId::generate(u64::MAX).as_str()).is_ok());
}

#[test]
fn room_id_validation() {
    for good in ["abc", "brave-teal-otter-x7k2", &"a".repeat(48)] {
        assert!(RoomId::new(good).is_ok(), "{good}");
    }
    for bad in ["ab", &"a".repeat(49), "Abc", "a.b.c", "a/b", "a b", "ä-room", "room*"] {
        assert!(RoomId::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn deleted_chat_is_redacted_and_nothing_else() {
    let posted = |id: u64, text: &str| {
        json::to_value(&Event::ChatPosted {
            message: ChatMessage {
                id: MessageId::nth(id),
                member_id: MemberId::new("malice").unwrap(),
                text: text.into(),
                at_ms: 5,
            },
        })
        .unwrap()
    };
    let deleted = |id: &str| id == "c2";
    let mut commit = json!({"version": 3, "events": [posted(1, "kept"), posted(2, "gone"), json!({"type": "chat_deleted", "message_id": "c2"})]});
    json::redact_commit(&mut commit, &deleted);
    assert_eq!(
        commit["events"][0]["message"],
        json!({"id": "c1", "member_id": "malice", "text": "kept", "at_ms": 5})
    );
    assert_eq!(
        commit["events"][1]["message"],
        json!({"id": "c2", "member_id": "malice", "text": "", "at_ms": 5, "deleted": true})
    );
    assert_eq!(commit["events"][2], json!({"type": "chat_deleted", "message_id": "c2"}));
    let mut other = json!({"type": "chat_deleted", "message": {"id": "c2", "text": "x"}});
    assert!(!json::redact_event(&mut other, &deleted));
}

/// Issue 22: a big room's view lists its latest members (after the host), and counts them all.
#[test]
fn a_big_rooms_view_lists_a_page_of_members_and_counts_them_all() {
    use crate::view::MEMBER_PAGE;
    let joins = (0..MEMBER_PAGE + 50).map(|n| (member(&format!("m{n}")), join(&format!("m{n}"))));
    let mut steps = url_room();
    steps.extend(joins);
    // m0 goes offline: the counts say so, wherever it is listed.
    steps.push((member("m0"), Command::Leave { reason: LeaveReason::Disconnected }));
    // m3, listed before the page, says something: the view names it.
    steps.push((member("m3"), Command::Chat { text: "early".into() }));
    let (state, _) = fold(&steps);
    let view = serde_json::to_value(state.view()).unwrap();
    let total = MEMBER_PAGE + 52; // host, alice and the joiners
    assert_eq!(view["member_count"], total);
    assert_eq!(view["online_count"], total - 1);
    let listed: Vec<&str> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["member_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), MEMBER_PAGE + 2, "the host, the chat's author, the page");
    assert_eq!(listed[..2], ["mhost", "m3"], "the earlier members named by what is shown");
    assert_eq!(listed[2], "m50", "then the latest {MEMBER_PAGE} to join, in join order");
    assert_eq!(listed.last(), Some(&"m149"));
    // The developers' view lists everyone.
    let full = serde_json::to_value(state.full_view()).unwrap();
    assert_eq!(full["members"].as_array().unwrap().len(), total);
    // A small room's view is whole: nothing changes below the page.
    let (small, _) = fold(&url_room());
    let view = serde_json::to_value(small.view()).unwrap();
    assert_eq!((view["members"].as_array().unwrap().len(), &view["member_count"]), (2, &json!(2)));
}
