//! The largest room state the domain limits allow still fits in one snapshot message (the
//! snapshot stream and nats.conf allow 8 MiB; snapshots are JSON, the commits' codec is
//! postcard; a room of 10 000 members is what needs more than NATS's default 1 MiB): built through
//! `decide` with every limit at its maximum and every character the widest a limit allows.

use super::fixtures::*;
use crate::*;

/// Room to spare under 8 MiB for the snapshot's envelope and headers.
const SNAPSHOT_BUDGET: usize = (8 << 20) - (128 << 10);

/// A four-byte character (in UTF-8 and in JSON: serde_json does not escape it).
const WIDE: char = '𝄞';

fn wide(chars: usize) -> String {
    std::iter::repeat_n(WIDE, chars).collect()
}

struct Room {
    state: RoomState,
    now: u64,
}

impl Room {
    fn apply(&mut self, actor: &Actor, command: Command) -> Result<(), Rejection> {
        let ctx = Ctx::new(room(), actor.clone(), self.now);
        let events = decide(&self.state, command, &ctx)?;
        let version = self.state.version + 1;
        let state = std::mem::take(&mut self.state);
        self.state = state.apply(&commit(version, actor.clone(), self.now, events));
        self.now += 1000;
        Ok(())
    }

    fn must(&mut self, actor: &Actor, command: Command) {
        let name = command.name();
        self.apply(actor, command).unwrap_or_else(|r| panic!("{name} refused: {r}"));
    }
}

/// URLs that fill the playlist's byte budget with `per_url` bytes each (short file names, so
/// that the URL, kept twice in a URL room, is most of each item).
fn urls(per_url: usize, start: usize) -> impl Iterator<Item = String> {
    (start..).map(move |n| {
        let file = format!("/{n}.webm");
        let pad = per_url - "https://example.com".len() - file.len() - 1;
        format!("https://example.com/{}{file}", "a".repeat(pad))
    })
}

/// The largest state: a URL room whose creation list fills the playlist's budget, 10 000 members
/// (the default limit) and 1000 bans (each with an address fingerprint), 50 chat messages of 500
/// wide characters, every name and the title at their longest in wide characters, every item
/// played once under shuffle.
fn largest(per_url: usize) -> RoomState {
    let limits = Limits::default();
    let host = host();
    let mut room = Room { state: RoomState::default(), now: T0 };
    // As many URLs as the budget takes at creation (up to the item limit).
    let per_item = per_url + format!("{}.webm", 1000).len();
    let count = (limits.max_playlist_bytes / per_item).min(limits.max_items);
    room.must(
        &host,
        Command::CreateRoom {
            title: wide(limits.max_title_chars),
            source: Source::Urls(urls(per_url, 0).take(count).collect()),
            settings: Settings::default(),
            name: wide(limits.max_name_chars),
            items: vec![],
            account: None,
        },
    );
    // The budget is spent: one more URL is refused.
    let more = Command::AddItems { urls: urls(per_url, count).take(1).collect() };
    assert!(room.apply(&host, more).is_err(), "the playlist's byte budget holds");

    // 1000 members kicked (banned, with their addresses), then as many listed as a room takes.
    let joiner = |n: usize| member(&format!("m{n:012}"));
    let join = |n: usize| Command::Join {
        name: wide(limits.max_name_chars),
        address: Some(format!("{n:022}")),
        // Every member signed in, with the longest username.
        account: Some(AccountRef {
            account_id: uuid::Uuid::from_u128(n as u128),
            username: Username::parse(&format!("{n:032}")).unwrap(),
        }),
    };
    for n in 0..limits.max_bans {
        room.must(&joiner(n), join(n));
        room.must(&host, Command::Kick { member_id: id(&joiner(n)) });
    }
    let extra = joiner(limits.max_bans);
    room.must(&extra, join(limits.max_bans));
    let kick = Command::Kick { member_id: id(&extra) };
    assert!(room.apply(&host, kick).is_err(), "the ban list holds");
    for n in limits.max_bans + 1..limits.max_bans + limits.max_members - 1 {
        room.must(&joiner(n), join(n));
    }
    for _ in 0..crate::state::CHAT_TAIL {
        room.must(&host, Command::Chat { text: wide(limits.max_chat_chars) });
    }
    room.must(&host, Command::SetShuffle { shuffle: true });
    while room.apply(&host, Command::Next { expected_item_id: None }).is_ok() {}
    assert!(room.state.played.len() + 1 >= count, "every item played once");
    room.state.check_invariants().unwrap();
    room.state
}

#[test]
fn the_largest_state_the_limits_allow_fits_in_a_snapshot() {
    for per_url in [160, 2048] {
        let state = largest(per_url);
        assert_eq!(state.members.len(), Limits::default().max_members);
        assert_eq!(state.banned.len(), Limits::default().max_bans);
        let json = serde_json::to_vec(&state).unwrap().len();
        let postcard = postcard::to_allocvec(&state).unwrap().len();
        assert!(json <= SNAPSHOT_BUDGET, "{per_url}-byte urls: {json} bytes of JSON");
        assert!(postcard <= SNAPSHOT_BUDGET, "{per_url}-byte urls: {postcard} bytes of postcard");
    }
}

#[test]
fn a_thread_refresh_adds_what_fits_in_the_budget() {
    let limits = Limits::default();
    let mut room = Room { state: RoomState::default(), now: T0 };
    room.must(&host(), create_chan(&[1]));
    let big = |tim: u64| Media { title: "t".repeat(1000), ..chan_media(tim) };
    let per_item = big(2).text_bytes();
    let refresh = Command::RefreshThread { items: (2..1000).map(big).collect() };
    room.must(&Actor::System, refresh);
    let used: usize = room.state.playlist.iter().map(|i| i.media.text_bytes()).sum();
    assert!(used <= limits.max_playlist_bytes, "{used}");
    assert!(used + per_item > limits.max_playlist_bytes, "as many as fit: {used}");
    // In thread order.
    let tims: Vec<_> = room.state.playlist.iter().map(|i| i.media.source_key.clone()).collect();
    assert_eq!(tims[1], Some("wsg/2".into()));
}
