//! Shared test vocabulary: actors, a room, and a harness that folds accepted commands.

use crate::*;

pub(super) const T0: u64 = 1_700_000_000_000;

pub(super) fn member(name: &str) -> Actor {
    Actor::Member(MemberId::new(name).unwrap())
}
pub(super) fn host() -> Actor {
    member("mhost")
}
pub(super) fn alice() -> Actor {
    member("malice")
}
pub(super) fn bob() -> Actor {
    member("mbob")
}
pub(super) fn id(actor: &Actor) -> MemberId {
    match actor {
        Actor::Member(id) => id.clone(),
        Actor::System => panic!("system has no member id"),
    }
}
pub(super) fn room() -> RoomId {
    RoomId::new("test-room").unwrap()
}
pub(super) fn item(n: u64) -> ItemId {
    ItemId::nth(n)
}
pub(super) fn urls(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("https://example.com/v/clip{i}.webm")).collect()
}
pub(super) fn create_urls(n: usize) -> Command {
    Command::CreateRoom {
        title: "movie night".into(),
        source: Source::Urls(urls(n)),
        settings: Settings::default(),
        name: "host".into(),
        items: vec![],
        account: None,
    }
}
pub(super) fn chan_media(tim: u64) -> Media {
    Media {
        title: format!("{tim}.webm"),
        url: format!("/media/wsg/{tim}.webm"),
        thumb_url: Some(format!("/media/wsg/{tim}s.jpg")),
        kind: ItemKind::Video,
        size: Some(1000),
        width: Some(160),
        height: Some(90),
        post_url: Some(format!("https://boards.4chan.org/wsg/thread/1#p{tim}")),
        md5: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()),
        source_key: Some(format!("wsg/{tim}")),
    }
}
pub(super) fn create_chan(tims: &[u64]) -> Command {
    Command::CreateRoom {
        title: String::new(),
        source: Source::Chan { board: "wsg".into(), thread: 5812345 },
        settings: Settings::default(),
        name: "host".into(),
        items: tims.iter().map(|&t| chan_media(t)).collect(),
        account: None,
    }
}
pub(super) fn join(name: &str) -> Command {
    Command::Join { name: name.into(), address: None, account: None }
}

/// A URL room of three items with the host and alice online.
pub(super) fn url_room() -> Vec<(Actor, Command)> {
    vec![(host(), create_urls(3)), (alice(), join("alice"))]
}

/// A room plus `more` setup steps.
pub(super) fn with(more: Vec<(Actor, Command)>) -> Vec<(Actor, Command)> {
    let mut steps = url_room();
    steps.extend(more);
    steps
}

/// Decides and applies `steps` one after another (each must be accepted), one second apart.
/// Returns the state and the clock after the last one.
pub(super) fn fold(steps: &[(Actor, Command)]) -> (RoomState, u64) {
    let mut state = RoomState::default();
    let mut now = T0;
    for (n, (actor, command)) in steps.iter().enumerate() {
        let ctx = Ctx::new(room(), actor.clone(), now);
        let events = decide(&state, command.clone(), &ctx)
            .unwrap_or_else(|r| panic!("given step {n} ({}) was rejected: {r}", command.name()));
        let version = state.version + 1;
        state = state.apply(&commit(version, actor.clone(), now, events));
        state.check_invariants().unwrap();
        now += 1000;
    }
    (state, now)
}

pub(super) fn commit(version: u64, actor: Actor, at_ms: u64, events: Vec<Event>) -> Commit {
    Commit {
        room: room(),
        version,
        command_id: CommandId::derived(uuid::Uuid::from_u128(1), &version.to_string()),
        actor,
        at_ms,
        events,
    }
}
