//! The JSON form of every message, pinned: replicas of two versions talk during an upgrade, so a
//! change here is a protocol change (add optional fields; never rename or remove one).

use events::{
    Actor, Command, CommandId, Control, ItemKind, Media, MemberId, RejectCode, RoomId, Source,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::*;

/// `value` serializes to exactly `golden`, and `golden` reads back as `value`.
fn pinned<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T, golden: Value) {
    assert_eq!(serde_json::to_value(&value).unwrap(), golden, "{value:?}");
    assert_eq!(serde_json::from_value::<T>(golden).unwrap(), value);
}

fn room() -> RoomId {
    RoomId::new("brave-teal-otter-x7k2").unwrap()
}

fn media() -> Media {
    Media {
        title: "cat jumps.webm".into(),
        url: "/media/wsg/1743100200123456.webm".into(),
        thumb_url: Some("/media/wsg/1743100200123456s.jpg".into()),
        kind: ItemKind::Video,
        size: Some(34336),
        width: Some(320),
        height: Some(180),
        post_url: Some("https://boards.4chan.org/wsg/thread/5812345#p5812345".into()),
        md5: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()),
        source_key: Some("wsg/1743100200123456".into()),
    }
}

#[test]
fn subjects() {
    assert_eq!(subjects::command(&room()), "chanshare.cmd.brave-teal-otter-x7k2");
    assert_eq!(subjects::command_room("chanshare.cmd.brave-teal-otter-x7k2"), Some(room()));
    assert_eq!(subjects::command_room("chanshare.cmd.Bad!"), None);
    assert_eq!(subjects::command_room("chanshare.rooms.create"), None);
    assert_eq!(subjects::CREATE, "chanshare.rooms.create");
    assert_eq!(subjects::RESOLVE, "chanshare.content.resolve");
    assert_eq!(subjects::WATCH, "chanshare.content.watch");
    assert_eq!(subjects::DEADLETTER, "chanshare.deadletter");
}

#[test]
fn command_request() {
    let id = CommandId(uuid_of("6f1c2b6e-2a8e-4a53-9a43-6f0a9b9f6d11"));
    pinned(
        CommandRequest {
            id,
            actor: Actor::Member(MemberId::new("m3k9q2xw7h4ab").unwrap()),
            command: Command::Seek { position_ms: 60_000 },
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        },
        json!({
            "id": "6f1c2b6e-2a8e-4a53-9a43-6f0a9b9f6d11",
            "actor": "m3k9q2xw7h4ab",
            "command": {"type": "seek", "position_ms": 60000},
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        }),
    );
    pinned(
        CommandRequest { id, actor: Actor::System, command: Command::Close, traceparent: None },
        json!({"id": "6f1c2b6e-2a8e-4a53-9a43-6f0a9b9f6d11", "actor": "@system",
               "command": {"type": "close"}, "traceparent": null}),
    );
    // Unknown fields are refused: a request is never half understood.
    let extra = json!({"id": "6f1c2b6e-2a8e-4a53-9a43-6f0a9b9f6d11", "actor": "@system",
                       "command": {"type": "close"}, "sudo": true});
    assert!(serde_json::from_value::<CommandRequest>(extra).is_err());
}

#[test]
fn command_reply() {
    pinned(CommandReply::Accepted { version: 43 }, json!({"status": "accepted", "version": 43}));
    pinned(
        CommandReply::Rejected { code: RejectCode::Forbidden, message: "only the host".into() },
        json!({"status": "rejected", "code": "forbidden", "message": "only the host"}),
    );
    pinned(
        CommandReply::unavailable("log down"),
        json!({"status": "error", "code": "unavailable", "message": "log down"}),
    );
}

#[test]
fn create() {
    pinned(
        CreateRequest {
            title: Some("movie night".into()),
            source: Source::Chan { board: "wsg".into(), thread: 5_812_345 },
            control: Some(Control::Host),
            listed: Some(false),
            name: Some("anon".into()),
            account: None,
        },
        json!({"title": "movie night", "source": {"chan": {"board": "wsg", "thread": 5812345}},
               "control": "host", "listed": false, "name": "anon"}),
    );
    let minimal: CreateRequest =
        serde_json::from_value(json!({"source": {"urls": ["https://example.com/a.webm"]}}))
            .unwrap();
    assert_eq!(minimal.source, Source::Urls(vec!["https://example.com/a.webm".into()]));
    assert_eq!(
        (minimal.title, minimal.control, minimal.listed, minimal.name),
        (None, None, None, None)
    );
    pinned(
        CreateReply::Created {
            room_id: room(),
            member_id: MemberId::new("m3k9q2xw7h4ab").unwrap(),
            host_token: "v1.e30.sig".into(),
            version: 1,
        },
        json!({"status": "created", "room_id": "brave-teal-otter-x7k2",
               "member_id": "m3k9q2xw7h4ab", "host_token": "v1.e30.sig", "version": 1}),
    );
    pinned(
        CreateReply::Rejected { code: RejectCode::NotFound, message: "thread not found".into() },
        json!({"status": "rejected", "code": "not_found", "message": "thread not found"}),
    );
}

#[test]
fn content() {
    pinned(
        ResolveRequest { board: "wsg".into(), thread: 5_812_345 },
        json!({"board": "wsg", "thread": 5812345}),
    );
    pinned(
        ResolveReply::Resolved {
            items: vec![media()],
            archived: false,
            title: Some("YGYL".into()),
        },
        json!({"status": "resolved", "archived": false, "title": "YGYL", "items": [{
            "title": "cat jumps.webm", "url": "/media/wsg/1743100200123456.webm",
            "thumb_url": "/media/wsg/1743100200123456s.jpg", "kind": "video", "size": 34336,
            "width": 320, "height": 180,
            "post_url": "https://boards.4chan.org/wsg/thread/5812345#p5812345",
            "md5": "AAAAAAAAAAAAAAAAAAAAAA==", "source_key": "wsg/1743100200123456"}]}),
    );
    // A content service older than `title` answers without it.
    let old: ResolveReply =
        serde_json::from_value(json!({"status": "resolved", "items": []})).unwrap();
    assert_eq!(old, ResolveReply::Resolved { items: vec![], archived: false, title: None });
    pinned(
        ResolveReply::NotFound { message: "thread not found".into() },
        json!({"status": "not_found", "message": "thread not found"}),
    );
    pinned(
        ResolveReply::NotFound { message: "no such board: /zzz/".into() },
        json!({"status": "not_found", "message": "no such board: /zzz/"}),
    );
    pinned(
        ResolveReply::Error { code: RejectCode::Unavailable, message: "upstream 503".into() },
        json!({"status": "error", "code": "unavailable", "message": "upstream 503"}),
    );
    pinned(
        WatchRequest { room: room(), board: "wsg".into(), thread: 5_812_345 },
        json!({"room": "brave-teal-otter-x7k2", "board": "wsg", "thread": 5812345}),
    );
    pinned(WatchReply::Watching, json!({"status": "watching"}));
    pinned(
        WatchReply::NotWatched { reason: "archived".into() },
        json!({"status": "not_watched", "reason": "archived"}),
    );
    pinned(
        WatchReply::NotWatched { reason: "limit".into() },
        json!({"status": "not_watched", "reason": "limit"}),
    );
    pinned(
        WatchReply::Error { message: "redis down".into() },
        json!({"status": "error", "message": "redis down"}),
    );
}

#[test]
fn deadletter() {
    pinned(
        DeadLetter { room: "brave-teal-otter-x7k2".into(), seq: 912, reason: "undecodable".into() },
        json!({"room": "brave-teal-otter-x7k2", "seq": 912, "reason": "undecodable"}),
    );
}

fn uuid_of(text: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(text).unwrap()
}
