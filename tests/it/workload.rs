//! A reproducible random workload: many rooms, accepted commands decided by the real domain and
//! appended through `eventlog`.

use eventlog::EventLog;
use events::{
    Actor, Command, CommandId, Commit, Control, Ctx, ItemId, LeaveReason, MemberId, RoomId,
    RoomState, Settings, Source, decide,
};

/// A small deterministic PRNG (xorshift64*), so a failing run can be replayed from its seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) struct Room {
    pub(crate) id: RoomId,
    pub(crate) state: RoomState,
    pub(crate) seq: u64,
}

/// Rooms being driven by random accepted commands.
pub(crate) struct Workload {
    pub(crate) rooms: Vec<Room>,
    rng: Rng,
    now_ms: u64,
}

impl Workload {
    pub(crate) fn new(prefix: &str, rooms: usize, seed: u64) -> Self {
        let rooms = (0..rooms)
            .map(|n| Room {
                id: RoomId::new(format!("{prefix}-{n}")).unwrap(),
                state: RoomState::default(),
                seq: 0,
            })
            .collect();
        Self { rooms, rng: Rng::new(seed), now_ms: 1_700_000_000_000 }
    }

    fn command(&mut self, state: &RoomState) -> (Actor, Command) {
        let member = |n: u64| Actor::Member(MemberId::new(format!("m{n}")).unwrap());
        if !state.exists() {
            let urls = (0..3).map(|i| format!("https://example.com/{i}.webm")).collect();
            let settings = Settings { control: Control::Everyone, listed: self.rng.below(4) != 0 };
            let command = Command::CreateRoom {
                title: String::new(),
                source: Source::Urls(urls),
                settings,
                name: "host".into(),
                items: vec![],
                account: None,
            };
            return (member(0), command);
        }
        let actor = member(self.rng.below(6));
        let item = ItemId::nth(1 + self.rng.below(state.items_added.max(1) + 1));
        let command = match self.rng.below(20) {
            0..=2 => Command::Join {
                name: format!("n{}", self.rng.below(100)),
                address: None,
                account: None,
            },
            3..=7 => Command::Chat { text: format!("message {}", self.rng.next()) },
            8 => Command::Play,
            9 => Command::Pause,
            10 => Command::Seek { position_ms: self.rng.below(600_000) },
            11 => Command::Next { expected_item_id: None },
            12 => Command::Previous { expected_item_id: None },
            13 => Command::Jump { item_id: item },
            14 => Command::AddItems {
                urls: vec![format!("https://example.com/{}.mp4", self.rng.next())],
            },
            15 => Command::RemoveItem { item_id: item },
            16 => Command::Leave {
                reason: if self.rng.below(2) == 0 {
                    LeaveReason::Timeout
                } else {
                    LeaveReason::Left
                },
            },
            17 => Command::SetRate { rate: [0.5, 1.0, 1.5, 2.0][self.rng.below(4) as usize] },
            18 => Command::DeleteChat {
                message_id: events::MessageId::nth(
                    1 + self.rng.below(state.messages_posted.max(1)),
                ),
            },
            _ => Command::SetListed { listed: self.rng.below(2) == 0 },
        };
        (actor, command)
    }

    /// Appends `n` accepted commits, spread over random rooms.
    pub(crate) async fn run(&mut self, log: &EventLog, n: usize) {
        for _ in 0..n {
            let index = self.rng.below(self.rooms.len() as u64) as usize;
            self.step(log, index).await;
        }
    }

    /// Appends one accepted commit to room `index`.
    pub(crate) async fn step(&mut self, log: &EventLog, index: usize) {
        loop {
            self.now_ms += 1 + self.rng.below(2000);
            let state = self.rooms[index].state.clone();
            let (actor, command) = self.command(&state);
            let ctx = Ctx::new(self.rooms[index].id.clone(), actor.clone(), self.now_ms);
            let Ok(events) = decide(&state, command, &ctx) else { continue };
            if events.is_empty() {
                continue;
            }
            let room = &mut self.rooms[index];
            let commit = Commit {
                room: room.id.clone(),
                version: state.version + 1,
                command_id: CommandId(uuid::Uuid::new_v4()),
                actor,
                at_ms: self.now_ms,
                events,
            };
            let appended = log.append(room.seq, &commit, None).await.unwrap();
            room.seq = appended.position.seq;
            room.state = std::mem::take(&mut room.state).apply(&commit);
            return;
        }
    }
}
