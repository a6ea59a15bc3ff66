//! Given/when/then: every command with at least one accepted and one rejected case.

use super::fixtures::*;
use crate::*;

enum Then {
    /// Accepted with events of these names, in order.
    Events(&'static [&'static str]),
    /// Accepted with these events, and the state afterwards passes the check.
    EventsAnd(&'static [&'static str], fn(&RoomState) -> bool),
    /// Rejected with this code.
    Reject(RejectCode),
}
use Then::*;

struct Case {
    name: &'static str,
    given: Vec<(Actor, Command)>,
    when: (Actor, Command),
    then: Then,
}

/// The tables' room size: the limit is a setting (`CHANSHARE_MAX_MEMBERS`), and filling a room of
/// the default 10 000 in every case would only make the tables slow.
const FULL: usize = 50;

fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let (state, now) = fold(&case.given);
        let (actor, command) = case.when;
        let mut ctx = Ctx::new(room(), actor.clone(), now);
        ctx.limits.max_members = FULL;
        let result = decide(&state, command, &ctx);
        let outcome = match (&result, &case.then) {
            (Ok(events), Events(names) | EventsAnd(names, _)) => {
                let got: Vec<_> = events.iter().map(Event::name).collect();
                let version = state.version + 1;
                let after = state.clone().apply(&commit(version, actor, now, events.clone()));
                if got != *names {
                    Err(format!("expected events {names:?}, got {got:?}"))
                } else if let Err(broken) = after.check_invariants() {
                    Err(format!("invariant broken: {broken}"))
                } else if let EventsAnd(_, predicate) = case.then
                    && !predicate(&after)
                {
                    Err(format!("state check failed: {after:#?}"))
                } else {
                    Ok(())
                }
            }
            (Err(r), Reject(code)) if r.code == *code => Ok(()),
            (Err(r), _) => Err(format!("unexpected rejection {r}")),
            (Ok(events), Reject(code)) => Err(format!("expected {code}, accepted with {events:?}")),
        };
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(failures.is_empty(), "failing cases:\n{}", failures.join("\n"));
}

fn play() -> (Actor, Command) {
    (host(), Command::Play)
}
fn host_mode() -> (Actor, Command) {
    (host(), Command::SetControl { control: Control::Host })
}

#[test]
fn room_lifecycle() {
    check(vec![
        Case {
            name: "create a url room: host, items and a first current item",
            given: vec![],
            when: (host(), create_urls(2)),
            then: EventsAnd(
                &[
                    "room_created",
                    "member_joined",
                    "host_changed",
                    "items_added",
                    "playback_changed",
                ],
                |s| {
                    s.playlist.len() == 2
                        && s.playback.item_id == Some(item(1))
                        && !s.playback.playing
                        && s.host == Some(id(&host()))
                        && s.title == "movie night"
                },
            ),
        },
        Case {
            name: "create a chan room with a default title",
            given: vec![],
            when: (host(), create_chan(&[11, 12])),
            then: EventsAnd(
                &[
                    "room_created",
                    "member_joined",
                    "host_changed",
                    "items_added",
                    "playback_changed",
                ],
                |s| {
                    s.title == "/wsg/ 5812345"
                        && s.playlist[1].media.source_key.as_deref() == Some("wsg/12")
                },
            ),
        },
        Case {
            name: "create an existing room",
            given: url_room(),
            when: (bob(), create_urls(1)),
            then: Reject(RejectCode::Conflict),
        },
        Case {
            name: "create a url room without urls",
            given: vec![],
            when: (host(), create_urls(0)),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "create with a javascript url",
            given: vec![],
            when: (
                host(),
                Command::CreateRoom {
                    title: "x".into(),
                    source: Source::Urls(vec!["javascript:alert(1)".into()]),
                    settings: Settings::default(),
                    name: "host".into(),
                    items: vec![],
                    account: None,
                },
            ),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "create with a bad board",
            given: vec![],
            when: (
                host(),
                Command::CreateRoom {
                    title: String::new(),
                    source: Source::Chan { board: "../etc".into(), thread: 1 },
                    settings: Settings::default(),
                    name: "host".into(),
                    items: vec![],
                    account: None,
                },
            ),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "create with a title over 120 characters",
            given: vec![],
            when: (
                host(),
                Command::CreateRoom {
                    title: "t".repeat(121),
                    source: Source::Urls(urls(1)),
                    settings: Settings::default(),
                    name: "host".into(),
                    items: vec![],
                    account: None,
                },
            ),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "the server cannot create a room",
            given: vec![],
            when: (Actor::System, create_urls(1)),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "any command to a missing room",
            given: vec![],
            when: (alice(), join("alice")),
            then: Reject(RejectCode::NotFound),
        },
        Case {
            name: "host closes the room (pausing it first)",
            given: with(vec![play()]),
            when: (host(), Command::Close),
            then: EventsAnd(&["playback_changed", "room_closed"], |s| {
                s.closed == Some(CloseReason::Host) && !s.playback.playing
            }),
        },
        Case {
            name: "a member cannot close the room",
            given: url_room(),
            when: (alice(), Command::Close),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "a closed room rejects everything",
            given: with(vec![(host(), Command::Close)]),
            when: (alice(), Command::Chat { text: "hello?".into() }),
            then: Reject(RejectCode::Closed),
        },
        Case {
            name: "a closed room rejects joins",
            given: with(vec![(host(), Command::Close)]),
            when: (bob(), join("bob")),
            then: Reject(RejectCode::Closed),
        },
        Case {
            name: "the server closes an idle room",
            given: with(vec![
                (alice(), Command::Leave { reason: LeaveReason::Timeout }),
                (host(), Command::Leave { reason: LeaveReason::Timeout }),
            ]),
            when: (Actor::System, Command::Close),
            then: EventsAnd(&["room_closed"], |s| s.closed == Some(CloseReason::Idle)),
        },
        Case {
            name: "the server does not close a room with people online",
            given: url_room(),
            when: (Actor::System, Command::Close),
            then: Reject(RejectCode::Conflict),
        },
        Case {
            name: "the server does not chat",
            given: url_room(),
            when: (Actor::System, Command::Chat { text: "hi".into() }),
            then: Reject(RejectCode::Forbidden),
        },
    ]);
}

#[test]
fn membership() {
    check(vec![
        Case {
            name: "join",
            given: url_room(),
            when: (bob(), join("bob")),
            then: EventsAnd(&["member_joined"], |s| s.members.len() == 3 && s.online_count() == 3),
        },
        Case {
            name: "join twice while online changes nothing",
            given: url_room(),
            when: (alice(), join("alice")),
            then: Events(&[]),
        },
        Case {
            name: "join with an empty name",
            given: url_room(),
            when: (bob(), join("   ")),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "join with a name over 32 characters",
            given: url_room(),
            when: (bob(), join(&"b".repeat(33))),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "a kicked member cannot rejoin",
            given: with(vec![(host(), Command::Kick { member_id: id(&alice()) })]),
            when: (alice(), join("alice")),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "a timed-out member returns at the end of the join order, renamed",
            given: with(vec![
                (bob(), join("bob")),
                (alice(), Command::Leave { reason: LeaveReason::Timeout }),
            ]),
            when: (alice(), join("alice2")),
            then: EventsAnd(&["member_returned", "member_renamed"], |s| {
                s.members
                    .last()
                    .is_some_and(|m| m.member_id == id(&alice()) && m.online && m.name == "alice2")
            }),
        },
        Case {
            name: "a timed-out member reconnecting without a name keeps theirs",
            given: with(vec![(alice(), Command::Leave { reason: LeaveReason::Timeout })]),
            when: (alice(), join("")),
            then: EventsAnd(&["member_returned"], |s| {
                s.member(&id(&alice())).is_some_and(|m| m.name == "alice")
            }),
        },
        Case {
            name: "an online member reconnecting without a name changes nothing",
            given: url_room(),
            when: (alice(), join("")),
            then: Events(&[]),
        },
        Case {
            name: "a full room prunes its longest-offline member",
            given: {
                let mut steps = vec![(host(), create_urls(1))];
                for n in 1..FULL {
                    steps.push((member(&format!("m{n}")), join("x")));
                }
                steps.push((member("m1"), Command::Leave { reason: LeaveReason::Timeout }));
                steps
            },
            when: (bob(), join("bob")),
            then: EventsAnd(&["member_left", "member_joined"], |s| {
                s.members.len() == FULL && s.member(&MemberId::new("m1").unwrap()).is_none()
            }),
        },
        Case {
            name: "a full room of online members refuses a join",
            given: {
                let mut steps = vec![(host(), create_urls(1))];
                for n in 1..FULL {
                    steps.push((member(&format!("m{n}")), join("x")));
                }
                steps
            },
            when: (bob(), join("bob")),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "a non-member cannot act",
            given: url_room(),
            when: (bob(), Command::Chat { text: "hi".into() }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "leave removes the member",
            given: url_room(),
            when: (alice(), Command::Leave { reason: LeaveReason::Left }),
            then: EventsAnd(&["member_left"], |s| s.members.len() == 1),
        },
        Case {
            name: "a stranger cannot leave",
            given: url_room(),
            when: (bob(), Command::Leave { reason: LeaveReason::Left }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "nobody leaves a closed room",
            given: with(vec![(host(), Command::Close)]),
            when: (alice(), Command::Leave { reason: LeaveReason::Left }),
            then: Reject(RejectCode::Closed),
        },
        Case {
            name: "the host leaving hands over to the longest-present online member",
            given: with(vec![(bob(), join("bob"))]),
            when: (host(), Command::Leave { reason: LeaveReason::Left }),
            then: EventsAnd(&["member_left", "host_changed"], |s| s.host == Some(id(&alice()))),
        },
        Case {
            name: "the host timing out hands over, skipping offline members",
            given: with(vec![
                (bob(), join("bob")),
                (alice(), Command::Leave { reason: LeaveReason::Timeout }),
            ]),
            when: (host(), Command::Leave { reason: LeaveReason::Timeout }),
            then: EventsAnd(&["member_went_offline", "host_changed"], |s| {
                s.host == Some(id(&bob()))
            }),
        },
        Case {
            name: "the last host timing out stays host, offline",
            given: vec![(host(), create_urls(1))],
            when: (host(), Command::Leave { reason: LeaveReason::Timeout }),
            then: EventsAnd(&["member_went_offline"], |s| s.host == Some(id(&host()))),
        },
        Case {
            name: "the last member leaving leaves no host",
            given: vec![(host(), create_urls(1))],
            when: (host(), Command::Leave { reason: LeaveReason::Left }),
            then: EventsAnd(&["member_left", "host_changed"], |s| s.host.is_none()),
        },
        Case {
            name: "someone joining an empty room becomes host",
            given: vec![
                (host(), create_urls(1)),
                (host(), Command::Leave { reason: LeaveReason::Left }),
            ],
            when: (bob(), join("bob")),
            then: EventsAnd(&["member_joined", "host_changed"], |s| s.host == Some(id(&bob()))),
        },
        Case {
            name: "someone joining while the host is offline becomes host",
            given: vec![
                (host(), create_urls(1)),
                (host(), Command::Leave { reason: LeaveReason::Timeout }),
            ],
            when: (bob(), join("bob")),
            then: EventsAnd(&["member_joined", "host_changed"], |s| s.host == Some(id(&bob()))),
        },
        Case {
            name: "an offline host coming back is host still",
            given: vec![
                (host(), create_urls(1)),
                (host(), Command::Leave { reason: LeaveReason::Timeout }),
            ],
            when: (host(), join("host")),
            then: EventsAnd(&["member_returned"], |s| s.host == Some(id(&host()))),
        },
        Case {
            name: "a second timeout is a no-op",
            given: with(vec![(alice(), Command::Leave { reason: LeaveReason::Timeout })]),
            when: (alice(), Command::Leave { reason: LeaveReason::Timeout }),
            then: Events(&[]),
        },
        Case {
            name: "rename",
            given: url_room(),
            when: (alice(), Command::Rename { name: "Alice ✨".into() }),
            then: EventsAnd(&["member_renamed"], |s| s.members[1].name == "Alice ✨"),
        },
        Case {
            name: "rename with a control character",
            given: url_room(),
            when: (alice(), Command::Rename { name: "a\u{7}b".into() }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "kick",
            given: url_room(),
            when: (host(), Command::Kick { member_id: id(&alice()) }),
            then: EventsAnd(&["member_left"], |s| {
                s.banned.contains(&id(&alice())) && s.members.len() == 1
            }),
        },
        Case {
            name: "a member cannot kick",
            given: with(vec![(bob(), join("bob"))]),
            when: (alice(), Command::Kick { member_id: id(&bob()) }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "the host cannot kick themself",
            given: url_room(),
            when: (host(), Command::Kick { member_id: id(&host()) }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "kick a stranger",
            given: url_room(),
            when: (host(), Command::Kick { member_id: id(&bob()) }),
            then: Reject(RejectCode::NotFound),
        },
        Case {
            name: "transfer host",
            given: url_room(),
            when: (host(), Command::TransferHost { member_id: id(&alice()) }),
            then: EventsAnd(&["host_changed"], |s| s.host == Some(id(&alice()))),
        },
        Case {
            name: "a member cannot take the host role",
            given: url_room(),
            when: (alice(), Command::TransferHost { member_id: id(&alice()) }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "transfer host to an offline member",
            given: with(vec![(alice(), Command::Leave { reason: LeaveReason::Timeout })]),
            when: (host(), Command::TransferHost { member_id: id(&alice()) }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "after a transfer the roles swap",
            given: with(vec![
                (host(), Command::TransferHost { member_id: id(&alice()) }),
                (alice(), Command::SetControl { control: Control::Host }),
            ]),
            when: (host(), Command::Play),
            then: Reject(RejectCode::Forbidden),
        },
    ]);
}

#[test]
fn chat_and_settings() {
    check(vec![
        Case {
            name: "chat",
            given: url_room(),
            when: (alice(), Command::Chat { text: "  hi <b>all</b>\nline two ".into() }),
            then: EventsAnd(&["chat_posted"], |s| {
                s.chat[0].text == "hi <b>all</b>\nline two" && s.chat[0].id.as_str() == "c1"
            }),
        },
        Case {
            name: "chat over 500 characters",
            given: url_room(),
            when: (alice(), Command::Chat { text: "x".repeat(501) }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "chat of exactly 500 characters",
            given: url_room(),
            when: (alice(), Command::Chat { text: "é".repeat(500) }),
            then: Events(&["chat_posted"]),
        },
        Case {
            name: "empty chat",
            given: url_room(),
            when: (alice(), Command::Chat { text: " \n ".into() }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "the chat tail keeps the last 50",
            given: with(
                (0..60).map(|n| (alice(), Command::Chat { text: format!("m{n}") })).collect(),
            ),
            when: (alice(), Command::Chat { text: "last".into() }),
            then: EventsAnd(&["chat_posted"], |s| {
                s.chat.len() == 50 && s.chat[0].text == "m11" && s.chat[49].id.as_str() == "c61"
            }),
        },
        Case {
            name: "delete own message",
            given: with(vec![(alice(), Command::Chat { text: "oops".into() })]),
            when: (alice(), Command::DeleteChat { message_id: MessageId::nth(1) }),
            then: EventsAnd(&["chat_deleted"], |s| s.chat.is_empty()),
        },
        Case {
            name: "the host deletes anyone's message",
            given: with(vec![(alice(), Command::Chat { text: "spam".into() })]),
            when: (host(), Command::DeleteChat { message_id: MessageId::nth(1) }),
            then: Events(&["chat_deleted"]),
        },
        Case {
            name: "a member cannot delete another's message",
            given: with(vec![(host(), Command::Chat { text: "rules".into() })]),
            when: (alice(), Command::DeleteChat { message_id: MessageId::nth(1) }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "delete a missing message",
            given: url_room(),
            when: (alice(), Command::DeleteChat { message_id: MessageId::nth(9) }),
            then: Reject(RejectCode::NotFound),
        },
        Case {
            name: "set control mode",
            given: url_room(),
            when: host_mode(),
            then: EventsAnd(&["control_changed"], |s| s.settings.control == Control::Host),
        },
        Case {
            name: "setting the same control mode changes nothing",
            given: url_room(),
            when: (host(), Command::SetControl { control: Control::Everyone }),
            then: Events(&[]),
        },
        Case {
            name: "a member cannot set control mode",
            given: url_room(),
            when: (alice(), Command::SetControl { control: Control::Everyone }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "unlist the room",
            given: url_room(),
            when: (host(), Command::SetListed { listed: false }),
            then: EventsAnd(&["listed_changed"], |s| !s.settings.listed),
        },
        Case {
            name: "a member cannot unlist the room",
            given: url_room(),
            when: (alice(), Command::SetListed { listed: false }),
            then: Reject(RejectCode::Forbidden),
        },
    ]);
}

#[test]
fn playlist() {
    check(vec![
        Case {
            name: "add items",
            given: url_room(),
            when: (
                alice(),
                Command::AddItems { urls: vec!["https://cdn.example/a/pic.PNG?x=1".into()] },
            ),
            then: EventsAnd(&["items_added"], |s| {
                s.playlist[3].item_id == item(4)
                    && s.playlist[3].media.kind == ItemKind::Image
                    && s.playlist[3].media.title == "pic.PNG"
            }),
        },
        Case {
            name: "add items to an empty playlist makes the first current",
            given: with(vec![
                (host(), Command::RemoveItem { item_id: item(1) }),
                (host(), Command::RemoveItem { item_id: item(2) }),
                (host(), Command::RemoveItem { item_id: item(3) }),
            ]),
            when: (alice(), Command::AddItems { urls: urls(2) }),
            then: EventsAnd(&["items_added", "playback_changed"], |s| {
                s.playback.item_id == Some(item(4))
            }),
        },
        Case {
            name: "add no items",
            given: url_room(),
            when: (alice(), Command::AddItems { urls: vec![] }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "add a non-http url",
            given: url_room(),
            when: (alice(), Command::AddItems { urls: vec!["file:///etc/passwd".into()] }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "add past the 1000-item limit",
            given: with((0..9).map(|_| (host(), Command::AddItems { urls: urls(100) })).collect()),
            when: (alice(), Command::AddItems { urls: urls(98) }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "fill the playlist to exactly 1000 items",
            given: with((0..9).map(|_| (host(), Command::AddItems { urls: urls(100) })).collect()),
            when: (alice(), Command::AddItems { urls: urls(97) }),
            then: EventsAnd(&["items_added"], |s| s.playlist.len() == 1000),
        },
        Case {
            name: "in host mode a member cannot add",
            given: with(vec![host_mode()]),
            when: (alice(), Command::AddItems { urls: urls(1) }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "remove a queued item",
            given: url_room(),
            when: (alice(), Command::RemoveItem { item_id: item(2) }),
            then: EventsAnd(&["item_removed"], |s| {
                s.playlist.len() == 2 && s.playback.item_id == Some(item(1))
            }),
        },
        Case {
            name: "remove the current item moves to the next, still playing",
            given: with(vec![play()]),
            when: (alice(), Command::RemoveItem { item_id: item(1) }),
            then: EventsAnd(&["item_removed", "playback_changed"], |s| {
                s.playback.item_id == Some(item(2))
                    && s.playback.playing
                    && s.playback.position_ms == 0
            }),
        },
        Case {
            name: "remove the current last item moves to the one before",
            given: with(vec![(host(), Command::Jump { item_id: item(3) })]),
            when: (alice(), Command::RemoveItem { item_id: item(3) }),
            then: EventsAnd(&["item_removed", "playback_changed"], |s| {
                s.playback.item_id == Some(item(2))
            }),
        },
        Case {
            name: "remove the only item empties playback",
            given: with(vec![
                play(),
                (host(), Command::RemoveItem { item_id: item(2) }),
                (host(), Command::RemoveItem { item_id: item(3) }),
            ]),
            when: (alice(), Command::RemoveItem { item_id: item(1) }),
            then: EventsAnd(&["item_removed", "playback_changed"], |s| {
                s.playback.item_id.is_none() && !s.playback.playing
            }),
        },
        Case {
            name: "remove a missing item",
            given: url_room(),
            when: (alice(), Command::RemoveItem { item_id: item(7) }),
            then: Reject(RejectCode::NotFound),
        },
        Case {
            name: "move an item to the front",
            given: url_room(),
            when: (alice(), Command::MoveItem { item_id: item(3), to: 0 }),
            then: EventsAnd(&["item_moved"], |s| {
                s.playlist.iter().map(|i| i.item_id.as_str()).collect::<Vec<_>>()
                    == ["i3", "i1", "i2"]
            }),
        },
        Case {
            name: "move an item to the last index",
            given: url_room(),
            when: (alice(), Command::MoveItem { item_id: item(1), to: 2 }),
            then: EventsAnd(&["item_moved"], |s| s.playlist[2].item_id == item(1)),
        },
        Case {
            name: "move past the end",
            given: url_room(),
            when: (alice(), Command::MoveItem { item_id: item(1), to: 3 }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "move a missing item",
            given: url_room(),
            when: (alice(), Command::MoveItem { item_id: item(9), to: 0 }),
            then: Reject(RejectCode::NotFound),
        },
        Case {
            name: "refresh adds only unseen thread media",
            given: vec![(host(), create_chan(&[11, 12]))],
            when: (
                Actor::System,
                Command::RefreshThread {
                    items: vec![chan_media(11), chan_media(12), chan_media(13)],
                },
            ),
            then: EventsAnd(&["items_added"], |s| {
                s.playlist.len() == 3 && s.playlist[2].item_id == item(3)
            }),
        },
        Case {
            name: "a second identical refresh adds nothing",
            given: vec![
                (host(), create_chan(&[11, 12])),
                (
                    Actor::System,
                    Command::RefreshThread {
                        items: vec![chan_media(11), chan_media(12), chan_media(13)],
                    },
                ),
            ],
            when: (
                Actor::System,
                Command::RefreshThread {
                    items: vec![chan_media(11), chan_media(12), chan_media(13)],
                },
            ),
            then: Events(&[]),
        },
        Case {
            name: "a member cannot refresh a thread",
            given: vec![(host(), create_chan(&[11]))],
            when: (host(), Command::RefreshThread { items: vec![chan_media(12)] }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "a url room cannot be refreshed",
            given: url_room(),
            when: (Actor::System, Command::RefreshThread { items: vec![chan_media(12)] }),
            then: Reject(RejectCode::Invalid),
        },
    ]);
}

#[test]
fn playback() {
    check(vec![
        Case {
            name: "play",
            given: url_room(),
            when: (alice(), Command::Play),
            then: EventsAnd(&["playback_changed"], |s| s.playback.playing),
        },
        Case {
            name: "play while playing changes nothing",
            given: with(vec![play()]),
            when: (alice(), Command::Play),
            then: Events(&[]),
        },
        Case {
            name: "play an empty playlist",
            given: vec![(host(), create_chan(&[]))],
            when: (host(), Command::Play),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "in host mode a member cannot play",
            given: with(vec![host_mode()]),
            when: (alice(), Command::Play),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "in host mode the host can play",
            given: with(vec![host_mode()]),
            when: (host(), Command::Play),
            then: Events(&["playback_changed"]),
        },
        Case {
            name: "pause freezes the derived position",
            given: with(vec![play()]),
            when: (alice(), Command::Pause),
            then: EventsAnd(&["playback_changed"], |s| {
                !s.playback.playing
                    && s.playback.position_ms == 1000
                    && s.playback.position_at(u64::MAX) == 1000
            }),
        },
        Case {
            name: "pause while paused changes nothing",
            given: url_room(),
            when: (alice(), Command::Pause),
            then: Events(&[]),
        },
        Case {
            name: "in host mode a member cannot pause",
            given: with(vec![host_mode(), play()]),
            when: (alice(), Command::Pause),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "seek re-anchors",
            given: with(vec![play()]),
            when: (alice(), Command::Seek { position_ms: 42_000 }),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.position_ms == 42_000
                    && s.playback.anchor_ms == T0 + 3000
                    && s.playback.playing
            }),
        },
        Case {
            name: "seek to 24 hours is allowed",
            given: url_room(),
            when: (alice(), Command::Seek { position_ms: 24 * 3600 * 1000 }),
            then: Events(&["playback_changed"]),
        },
        Case {
            name: "seek past 24 hours",
            given: url_room(),
            when: (alice(), Command::Seek { position_ms: 24 * 3600 * 1000 + 1 }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "next",
            given: with(vec![play()]),
            when: (alice(), Command::Next { expected_item_id: None }),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.item_id == Some(item(2))
                    && s.playback.position_ms == 0
                    && s.playback.playing
            }),
        },
        Case {
            name: "next at the last item",
            given: with(vec![(host(), Command::Jump { item_id: item(3) })]),
            when: (alice(), Command::Next { expected_item_id: None }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "next from the second-to-last reaches the last",
            given: with(vec![(host(), Command::Jump { item_id: item(2) })]),
            when: (alice(), Command::Next { expected_item_id: None }),
            then: EventsAnd(&["playback_changed"], |s| s.playback.item_id == Some(item(3))),
        },
        Case {
            name: "end of the current item advances once",
            given: with(vec![play()]),
            when: (alice(), Command::Next { expected_item_id: Some(item(1)) }),
            then: EventsAnd(&["playback_changed"], |s| s.playback.item_id == Some(item(2))),
        },
        Case {
            name: "a second end-of-item report after the room moved on",
            given: with(vec![play(), (host(), Command::Next { expected_item_id: Some(item(1)) })]),
            when: (alice(), Command::Next { expected_item_id: Some(item(1)) }),
            then: Reject(RejectCode::Conflict),
        },
        Case {
            name: "the end of the last item stops playback there",
            given: with(vec![(host(), Command::Jump { item_id: item(3) }), play()]),
            when: (alice(), Command::Next { expected_item_id: Some(item(3)) }),
            then: EventsAnd(&["playback_changed"], |s| {
                !s.playback.playing
                    && s.playback.item_id == Some(item(3))
                    && s.playback.position_ms == 1000
            }),
        },
        Case {
            name: "previous",
            given: with(vec![(host(), Command::Jump { item_id: item(2) })]),
            when: (alice(), Command::Previous { expected_item_id: None }),
            then: EventsAnd(&["playback_changed"], |s| s.playback.item_id == Some(item(1))),
        },
        Case {
            name: "previous at the first item",
            given: url_room(),
            when: (alice(), Command::Previous { expected_item_id: None }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "previous guarded by a stale item",
            given: with(vec![(host(), Command::Jump { item_id: item(3) })]),
            when: (alice(), Command::Previous { expected_item_id: Some(item(2)) }),
            then: Reject(RejectCode::Conflict),
        },
        Case {
            name: "jump",
            given: with(vec![(host(), Command::Seek { position_ms: 5000 })]),
            when: (alice(), Command::Jump { item_id: item(3) }),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.item_id == Some(item(3)) && s.playback.position_ms == 0
            }),
        },
        Case {
            name: "jump to a missing item",
            given: url_room(),
            when: (alice(), Command::Jump { item_id: item(4) }),
            then: Reject(RejectCode::NotFound),
        },
        Case {
            name: "set rate",
            given: with(vec![play()]),
            when: (alice(), Command::SetRate { rate: 1.25 }),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.rate.hundredths() == 125 && s.playback.position_ms == 1000
            }),
        },
        Case {
            name: "set rate to the minimum",
            given: url_room(),
            when: (alice(), Command::SetRate { rate: 0.25 }),
            then: Events(&["playback_changed"]),
        },
        Case {
            name: "set rate below 0.25",
            given: url_room(),
            when: (alice(), Command::SetRate { rate: 0.2 }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "set rate above 4",
            given: url_room(),
            when: (alice(), Command::SetRate { rate: 4.01 }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "set rate to not-a-number",
            given: url_room(),
            when: (alice(), Command::SetRate { rate: f64::NAN }),
            then: Reject(RejectCode::Invalid),
        },
    ]);
}

fn join_from(name: &str, address: &str) -> Command {
    Command::Join { name: name.into(), address: Some(address.into()), account: None }
}

#[test]
fn kicks_hold() {
    check(vec![
        Case {
            name: "a join records the member's address fingerprint once",
            given: vec![(host(), create_urls(1))],
            when: (alice(), join_from("alice", "fp-a")),
            then: EventsAnd(&["member_joined", "member_address_seen"], |s| {
                s.addresses.get(&id(&alice())).map(String::as_str) == Some("fp-a")
            }),
        },
        Case {
            name: "a reconnect from the same address records nothing new",
            given: vec![
                (host(), create_urls(1)),
                (alice(), join_from("alice", "fp-a")),
                (alice(), Command::Leave { reason: LeaveReason::Disconnected }),
            ],
            when: (alice(), join_from("", "fp-a")),
            then: Events(&["member_returned"]),
        },
        Case {
            name: "a kick bars the member's address",
            given: vec![(host(), create_urls(1)), (alice(), join_from("alice", "fp-a"))],
            when: (host(), Command::Kick { member_id: id(&alice()) }),
            then: EventsAnd(&["member_left"], |s| {
                s.banned.contains(&id(&alice()))
                    && s.banned_addresses.contains("fp-a")
                    && !s.addresses.contains_key(&id(&alice()))
            }),
        },
        Case {
            name: "the kicked member cannot rejoin with their token",
            given: vec![
                (host(), create_urls(1)),
                (alice(), join_from("alice", "fp-a")),
                (host(), Command::Kick { member_id: id(&alice()) }),
            ],
            when: (alice(), join_from("alice", "fp-other")),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "a new identity from the kicked address is refused",
            given: vec![
                (host(), create_urls(1)),
                (alice(), join_from("alice", "fp-a")),
                (host(), Command::Kick { member_id: id(&alice()) }),
            ],
            when: (bob(), join_from("not alice", "fp-a")),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "a listed member sharing the kicked address stays welcome",
            given: vec![
                (host(), create_urls(1)),
                (alice(), join_from("alice", "fp-a")),
                (bob(), join_from("bob", "fp-a")),
                (bob(), Command::Leave { reason: LeaveReason::Disconnected }),
                (host(), Command::Kick { member_id: id(&alice()) }),
            ],
            when: (bob(), join_from("", "fp-a")),
            then: Events(&["member_returned"]),
        },
        Case {
            name: "a member leaving takes their address out of the room",
            given: vec![(host(), create_urls(1)), (alice(), join_from("alice", "fp-a"))],
            when: (alice(), Command::Leave { reason: LeaveReason::Left }),
            then: EventsAnd(&["member_left"], |s| s.addresses.is_empty()),
        },
    ]);
}

#[test]
fn leaving_cleanly() {
    check(vec![
        Case {
            name: "a clean disconnect takes the member offline, still listed",
            given: url_room(),
            when: (alice(), Command::Leave { reason: LeaveReason::Disconnected }),
            then: EventsAnd(&["member_went_offline"], |s| {
                s.member(&id(&alice())).is_some_and(|m| !m.online)
            }),
        },
        Case {
            name: "the host disconnecting hands over to an online member",
            given: url_room(),
            when: (host(), Command::Leave { reason: LeaveReason::Disconnected }),
            then: EventsAnd(&["member_went_offline", "host_changed"], |s| {
                s.host == Some(id(&alice()))
            }),
        },
        Case {
            name: "the last member disconnecting stays host, offline",
            given: vec![(host(), create_urls(1))],
            when: (host(), Command::Leave { reason: LeaveReason::Disconnected }),
            then: EventsAnd(&["member_went_offline"], |s| s.host == Some(id(&host()))),
        },
        Case {
            name: "a disconnect of an offline member is a no-op",
            given: with(vec![(alice(), Command::Leave { reason: LeaveReason::Timeout })]),
            when: (alice(), Command::Leave { reason: LeaveReason::Disconnected }),
            then: Events(&[]),
        },
    ]);
}

fn next_after_end(n: u64) -> Command {
    Command::Next { expected_item_id: Some(item(n)) }
}

#[test]
fn playlist_modes() {
    check(vec![
        Case {
            name: "the host sets the image time",
            given: url_room(),
            when: (host(), Command::SetImageSeconds { seconds: 12 }),
            then: EventsAnd(&["image_seconds_changed"], |s| s.play_mode.image_seconds == 12),
        },
        Case {
            name: "images show for six seconds by default",
            given: url_room(),
            when: (host(), Command::SetImageSeconds { seconds: DEFAULT_IMAGE_SECONDS }),
            then: Events(&[]),
        },
        Case {
            name: "a member cannot set the image time",
            given: url_room(),
            when: (alice(), Command::SetImageSeconds { seconds: 3 }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "an image time of zero",
            given: url_room(),
            when: (host(), Command::SetImageSeconds { seconds: 0 }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "an image time beyond the limit",
            given: url_room(),
            when: (host(), Command::SetImageSeconds { seconds: 601 }),
            then: Reject(RejectCode::Invalid),
        },
        Case {
            name: "the host turns rewatch off",
            given: url_room(),
            when: (host(), Command::SetRewatch { rewatch: false }),
            then: EventsAnd(&["rewatch_changed"], |s| s.rewatch_off && !s.view().settings.rewatch),
        },
        Case {
            name: "rewatch is the host's, even with control for everyone",
            given: url_room(),
            when: (alice(), Command::SetRewatch { rewatch: false }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "rewatch already on",
            given: url_room(),
            when: (host(), Command::SetRewatch { rewatch: true }),
            then: Events(&[]),
        },
        Case {
            name: "the host of a closed room turns rewatch off",
            given: with(vec![(host(), Command::Close)]),
            when: (host(), Command::SetRewatch { rewatch: false }),
            then: EventsAnd(&["rewatch_changed"], |s| s.rewatch_off && s.closed.is_some()),
        },
        Case {
            name: "a closed room keeps the time it closed when its host changes rewatch",
            given: with(vec![(host(), Command::Close)]),
            when: (host(), Command::SetRewatch { rewatch: false }),
            then: EventsAnd(&["rewatch_changed"], |s| {
                s.closed_ms == T0 + 2_000 && s.updated_ms > s.closed_ms
            }),
        },
        Case {
            name: "a member of a closed room may not",
            given: with(vec![(host(), Command::Close)]),
            when: (alice(), Command::SetRewatch { rewatch: false }),
            then: Reject(RejectCode::Closed),
        },
        Case {
            name: "nothing else changes a closed room",
            given: with(vec![(host(), Command::Close)]),
            when: (host(), Command::SetListed { listed: false }),
            then: Reject(RejectCode::Closed),
        },
        Case {
            name: "rewatch back on",
            given: with(vec![(host(), Command::SetRewatch { rewatch: false })]),
            when: (host(), Command::SetRewatch { rewatch: true }),
            then: EventsAnd(&["rewatch_changed"], |s| !s.rewatch_off),
        },
        Case {
            name: "anyone with control turns loop on",
            given: url_room(),
            when: (alice(), Command::SetLoop { looping: true }),
            then: EventsAnd(&["loop_changed"], |s| s.play_mode.looping),
        },
        Case {
            name: "loop in host mode is the host's",
            given: with(vec![host_mode()]),
            when: (alice(), Command::SetLoop { looping: true }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "loop already on",
            given: with(vec![(host(), Command::SetLoop { looping: true })]),
            when: (host(), Command::SetLoop { looping: true }),
            then: Events(&[]),
        },
        Case {
            name: "without loop the last item's end stops the room",
            given: with(vec![(host(), Command::Jump { item_id: item(3) }), play()]),
            when: (alice(), next_after_end(3)),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.item_id == Some(item(3)) && !s.playback.playing
            }),
        },
        Case {
            name: "with loop the last item's end starts the playlist again",
            given: with(vec![
                (host(), Command::SetLoop { looping: true }),
                (host(), Command::Jump { item_id: item(3) }),
                play(),
            ]),
            when: (alice(), next_after_end(3)),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.item_id == Some(item(1)) && s.playback.playing
            }),
        },
        Case {
            name: "with loop, previous at the first item goes to the last",
            given: with(vec![(host(), Command::SetLoop { looping: true })]),
            when: (alice(), Command::Previous { expected_item_id: None }),
            then: EventsAnd(&["playback_changed"], |s| s.playback.item_id == Some(item(3))),
        },
        Case {
            name: "a loop of one item restarts it",
            given: vec![
                (host(), create_urls(1)),
                (host(), Command::SetLoop { looping: true }),
                play(),
                (host(), Command::Seek { position_ms: 5_000 }),
            ],
            when: (host(), next_after_end(1)),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.item_id == Some(item(1)) && s.playback.position_ms == 0
            }),
        },
        Case {
            name: "a one-item loop's restarted item ends again after it played a while",
            given: vec![
                (host(), create_urls(1)),
                (alice(), join("alice")),
                (host(), Command::SetLoop { looping: true }),
                play(),
                (host(), Command::Seek { position_ms: 5_000 }),
                (host(), next_after_end(1)),
                (host(), Command::SetRate { rate: 1.25 }),
            ],
            when: (alice(), next_after_end(1)),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.item_id == Some(item(1)) && s.playback.position_ms == 0
            }),
        },
        Case {
            name: "shuffle on starts a round with the current item",
            given: url_room(),
            when: (alice(), Command::SetShuffle { shuffle: true }),
            then: EventsAnd(&["shuffle_changed"], |s| {
                s.play_mode.shuffle && s.played.iter().eq([item(1)].iter())
            }),
        },
        Case {
            name: "shuffle's next is an item not played this round",
            given: with(vec![
                (host(), Command::SetShuffle { shuffle: true }),
                (host(), Command::Jump { item_id: item(2) }),
            ]),
            when: (alice(), Command::Next { expected_item_id: None }),
            then: EventsAnd(&["playback_changed"], |s| s.playback.item_id == Some(item(3))),
        },
        Case {
            name: "shuffle without loop stops when every item was played",
            given: with(vec![
                (host(), Command::SetShuffle { shuffle: true }),
                (host(), Command::Jump { item_id: item(2) }),
                (host(), Command::Jump { item_id: item(3) }),
                play(),
            ]),
            when: (alice(), next_after_end(3)),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.item_id == Some(item(3)) && !s.playback.playing
            }),
        },
        Case {
            name: "shuffle with loop starts a new round, never with the item that ended",
            given: with(vec![
                (host(), Command::SetShuffle { shuffle: true }),
                (host(), Command::SetLoop { looping: true }),
                (host(), Command::Jump { item_id: item(2) }),
                (host(), Command::Jump { item_id: item(3) }),
                play(),
            ]),
            when: (alice(), next_after_end(3)),
            then: EventsAnd(&["playback_changed"], |s| {
                s.playback.item_id.as_ref().is_some_and(|i| *i != item(3))
                    && s.playback.playing
                    && s.played.len() == 1
            }),
        },
        Case {
            name: "a removed item leaves the round",
            given: with(vec![
                (host(), Command::SetShuffle { shuffle: true }),
                (host(), Command::Jump { item_id: item(2) }),
            ]),
            when: (host(), Command::RemoveItem { item_id: item(1) }),
            then: EventsAnd(&["item_removed"], |s| !s.played.contains(&item(1))),
        },
    ]);
}

#[test]
fn shuffle_spreads_over_the_unplayed_items() {
    let (state, now) = fold(&with(vec![
        (host(), Command::AddItems { urls: urls(5) }),
        (host(), Command::SetShuffle { shuffle: true }),
    ]));
    let mut seen = std::collections::BTreeSet::new();
    for entropy in 0..64 {
        let ctx = Ctx { entropy, ..Ctx::new(room(), alice(), now) };
        let events = decide(&state, Command::Next { expected_item_id: None }, &ctx).unwrap();
        let Event::PlaybackChanged { playback, .. } = &events[0] else { panic!("{events:?}") };
        let next = playback.item_id.clone().unwrap();
        assert_ne!(next, item(1), "the current item is not next");
        seen.insert(next);
    }
    assert!(seen.len() >= 6, "64 draws over 7 unplayed items reached only {seen:?}");
}

/// The same end of a one-item loop reported twice (two pages, a moment apart) restarts it once.
#[test]
fn a_late_second_report_of_a_one_item_loop_end_does_not_restart_it_again() {
    let (state, now) = fold(&[
        (host(), create_urls(1)),
        (alice(), join("alice")),
        (host(), Command::SetLoop { looping: true }),
        play(),
        (host(), Command::Seek { position_ms: 5_000 }),
        (host(), next_after_end(1)),
    ]);
    // `fold` ran the restart one second before `now`: the late report comes 200 ms after it.
    let late = Ctx::new(room(), alice(), now - 800);
    let refused = decide(&state, next_after_end(1), &late).unwrap_err();
    assert_eq!(refused.code, RejectCode::Conflict);
    // Once the item played past the guard, its end counts again.
    let later = Ctx::new(room(), alice(), now + 500);
    assert!(decide(&state, next_after_end(1), &later).is_ok());
}

#[test]
fn names_refuse_invisible_and_direction_changing_characters() {
    let hostile = [
        "ad\u{202E}nimda",     // right-to-left override: shows as "adminda"
        "a\u{200B}lice",       // zero-width space: looks like "alice"
        "al\u{200D}ice",       // zero-width joiner
        "\u{2066}bob\u{2069}", // an isolate
        "\u{FEFF}carol",       // byte order mark
        "x\u{00AD}y",          // soft hyphen
    ];
    for name in hostile {
        check(vec![
            Case {
                name: "join with a hidden character",
                given: vec![(host(), create_urls(1))],
                when: (alice(), join(name)),
                then: Reject(RejectCode::Invalid),
            },
            Case {
                name: "rename to a hidden character",
                given: url_room(),
                when: (alice(), Command::Rename { name: name.into() }),
                then: Reject(RejectCode::Invalid),
            },
        ]);
    }
    // Names in every script (and emoji without joiners) are welcome.
    for name in ["Zoë", "李小龍", "שלום", "محمد", "🎸 guitar"] {
        check(vec![Case {
            name: "a name in any script",
            given: vec![(host(), create_urls(1))],
            when: (alice(), join(name)),
            then: Events(&["member_joined"]),
        }]);
    }
}

fn account(n: u128, name: &str) -> AccountRef {
    AccountRef { account_id: uuid::Uuid::from_u128(n), username: Username::parse(name).unwrap() }
}
fn signed_in(n: u128, name: &str) -> Command {
    Command::Join { name: String::new(), address: None, account: Some(account(n, name)) }
}
/// A URL room created by the account `owner` (member `mhost`), with alice, a guest, online.
fn owned_room() -> Vec<(Actor, Command)> {
    let Command::CreateRoom { title, source, settings, items, .. } = create_urls(2) else {
        unreachable!()
    };
    let account = Some(account(1, "owner"));
    let create =
        Command::CreateRoom { title, source, settings, name: String::new(), items, account };
    vec![(host(), create), (alice(), join("alice"))]
}
fn owner_away() -> Vec<(Actor, Command)> {
    let mut steps = owned_room();
    steps.push((host(), Command::Leave { reason: LeaveReason::Timeout }));
    steps
}

#[test]
fn accounts_in_rooms() {
    check(vec![
        Case {
            name: "a room created signed in is owned by its creator, named by the username",
            given: vec![],
            when: owned_room().remove(0),
            then: EventsAnd(
                &[
                    "room_created",
                    "member_joined",
                    "host_changed",
                    "account_bound",
                    "items_added",
                    "playback_changed",
                ],
                |s| {
                    s.owner == Some(id(&host()))
                        && s.members[0].name == "owner"
                        && s.view().members[0].account.map(Username::as_str) == Some("owner")
                        && s.view().members[0].owner
                },
            ),
        },
        Case {
            name: "a signed-in join without a name is called by the username and marked",
            given: url_room(),
            when: (bob(), signed_in(2, "bob_42")),
            then: EventsAnd(&["member_joined", "account_bound"], |s| {
                let member = s.member(&id(&bob())).unwrap();
                member.name == "bob_42"
                    && s.accounts.get(&id(&bob())).map(|a| a.username.as_str()) == Some("bob_42")
            }),
        },
        Case {
            name: "a second device of a signed-in member binds nothing new",
            given: with(vec![(bob(), signed_in(2, "bob_42"))]),
            when: (bob(), signed_in(2, "bob_42")),
            then: Events(&[]),
        },
        Case {
            name: "a member bound to one account cannot be joined with another",
            given: with(vec![(bob(), signed_in(2, "bob_42"))]),
            when: (bob(), signed_in(3, "mallory")),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "an account's member is not joined without the account (a member token alone)",
            given: with(vec![(bob(), signed_in(2, "bob_42"))]),
            when: (bob(), join("")),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "a guest's name never carries an account mark",
            given: url_room(),
            when: (bob(), join("owner")),
            then: EventsAnd(&["member_joined"], |s| {
                s.view().members.iter().all(|m| m.account.is_none() && !m.owner)
            }),
        },
        Case {
            name: "the owner away, a guest holds host",
            given: owned_room(),
            when: (host(), Command::Leave { reason: LeaveReason::Timeout }),
            then: EventsAnd(&["member_went_offline", "host_changed"], |s| {
                s.host == Some(id(&alice())) && s.owner == Some(id(&host()))
            }),
        },
        Case {
            name: "the owner coming back takes host back from the guest",
            given: owner_away(),
            when: (host(), signed_in(1, "owner")),
            then: EventsAnd(&["member_returned", "host_changed"], |s| s.host == Some(id(&host()))),
        },
        Case {
            name: "a guest who became host cannot kick the owner",
            given: owner_away(),
            when: (alice(), Command::Kick { member_id: id(&host()) }),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "the owner who left for good takes host back when they rejoin",
            given: {
                let mut steps = owned_room();
                steps.push((host(), Command::Leave { reason: LeaveReason::Left }));
                steps
            },
            when: (host(), signed_in(1, "owner")),
            then: EventsAnd(&["member_joined", "account_bound", "host_changed"], |s| {
                s.host == Some(id(&host())) && s.accounts.contains_key(&id(&host()))
            }),
        },
        Case {
            name: "a kicked account's member cannot rejoin (its member id is its account's)",
            given: with(vec![
                (bob(), signed_in(2, "bob_42")),
                (host(), Command::Kick { member_id: id(&bob()) }),
            ]),
            when: (bob(), signed_in(2, "bob_42")),
            then: Reject(RejectCode::Forbidden),
        },
        Case {
            name: "a kick unbinds the account (the ban is on the member)",
            given: with(vec![(bob(), signed_in(2, "bob_42"))]),
            when: (host(), Command::Kick { member_id: id(&bob()) }),
            then: EventsAnd(&["member_left"], |s| {
                !s.accounts.contains_key(&id(&bob())) && s.banned.contains(&id(&bob()))
            }),
        },
    ]);
}
