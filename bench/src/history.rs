//! Realistic room histories, made by the real rules: a room is created, twenty members join,
//! then chat, seeks, play/pause and rate changes follow in a fixed rotation. Every commit is
//! what `decide` produced for the state before it, so folding them is folding a real room.

use events::{
    Actor, Command, CommandId, Commit, Ctx, Limits, MemberId, RoomId, RoomState, Settings, Source,
    decide,
};

const MEMBERS: u64 = 20;

/// The commits of one room, made one by one.
#[derive(Debug)]
pub(crate) struct History {
    room: RoomId,
    state: RoomState,
    members: Vec<MemberId>,
    now_ms: u64,
    n: u64,
}

impl History {
    /// A room that does not exist yet.
    pub(crate) fn new(room: RoomId) -> History {
        let members = (0..=MEMBERS).map(|m| MemberId::generate(m * 7919 + 1)).collect();
        History { room, state: RoomState::default(), members, now_ms: 1_763_800_000_000, n: 0 }
    }

    /// The next commit (and folds it in).
    pub(crate) fn next_commit(&mut self) -> anyhow::Result<Commit> {
        self.n += 1;
        self.now_ms += 250;
        let n = self.n;
        let member = self.members[(n % (MEMBERS + 1)) as usize].clone();
        let (actor, command) = match n {
            1 => (self.members[0].clone(), create()),
            2..=21 => (
                self.members[(n - 1) as usize].clone(),
                Command::Join { name: format!("viewer{n}"), address: None, account: None },
            ),
            _ => (member, self.scripted(n)),
        };
        let ctx = Ctx {
            room: self.room.clone(),
            actor: Actor::Member(actor),
            now_ms: self.now_ms,
            limits: Limits::default(),
            entropy: n,
        };
        let events = match decide(&self.state, command, &ctx) {
            Ok(events) if !events.is_empty() => events,
            // A no-op (say, play while playing): chat instead, which always changes the room.
            _ => decide(&self.state, Command::Chat { text: format!("message {n}") }, &ctx)
                .map_err(|rejection| anyhow::anyhow!("chat refused: {rejection:?}"))?,
        };
        let commit = Commit {
            room: self.room.clone(),
            version: self.state.version + 1,
            command_id: CommandId(uuid::Uuid::from_u128(u128::from(n) << 64 | 0xbe4c)),
            actor: ctx.actor,
            at_ms: self.now_ms,
            events,
        };
        self.state = std::mem::take(&mut self.state).apply(&commit);
        Ok(commit)
    }

    fn scripted(&self, n: u64) -> Command {
        match n % 10 {
            0 | 3 | 6 => Command::Seek { position_ms: (n * 1_000) % 3_600_000 },
            1 => Command::Play,
            5 => Command::Pause,
            8 => Command::SetRate { rate: if n % 20 == 8 { 1.25 } else { 1.0 } },
            _ => Command::Chat {
                text: format!("message {n}: this scene again, watch the left side"),
            },
        }
    }
}

fn create() -> Command {
    Command::CreateRoom {
        title: "bench room".to_owned(),
        source: Source::Urls(vec![
            "https://media.example/a.webm".to_owned(),
            "https://media.example/b.webm".to_owned(),
            "https://media.example/c.webm".to_owned(),
        ]),
        settings: Settings::default(),
        name: "host".to_owned(),
        items: Vec::new(),
        account: None,
    }
}
