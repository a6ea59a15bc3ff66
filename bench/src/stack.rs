//! The system under test: nats-server and redis-server, and `chanshare` as three processes
//! (commands, projectors, gateway), as in production, so that the gateway's memory and CPU are
//! its own. Limits meant for the open internet are lifted: the load comes from one address.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use events::{Actor, Command, CommandId, MemberId, RoomId};
use protocol::subjects::{CREATE as CREATE_SUBJECT, command as command_subject};
use protocol::{CommandReply, CommandRequest, CreateReply};
use serde_json::json;
use tests::{Chanshare, NatsServer, RedisServer};

/// The running servers.
pub(crate) struct Stack {
    pub(crate) nats: NatsServer,
    pub(crate) redis: RedisServer,
    pub(crate) gateway: Chanshare,
    pub(crate) commands: Chanshare,
    pub(crate) projectors: Chanshare,
    pub(crate) client: async_nats::Client,
}

/// A room the harness created, with its host.
#[derive(Debug, Clone)]
pub(crate) struct Room {
    pub(crate) id: RoomId,
    pub(crate) host: MemberId,
    pub(crate) token: String,
}

impl Stack {
    /// Starts everything and waits until rooms can be created.
    pub(crate) async fn start() -> anyhow::Result<Stack> {
        Self::start_with(&[]).await
    }

    /// [`Stack::start`] with `extra` settings (a later setting wins over the lifted limits).
    pub(crate) async fn start_with(extra: &[(&'static str, &str)]) -> anyhow::Result<Stack> {
        let nats = NatsServer::start();
        let redis = RedisServer::start();
        let mut env = env(&nats, &redis);
        env.extend(extra.iter().map(|(key, value)| (*key, (*value).to_owned())));
        let commands = Chanshare::start("commands", &env);
        let projectors = Chanshare::start("projectors", &env);
        let gateway = Chanshare::start("gateway", &env);
        let client = async_nats::connect(nats.url()).await.context("connect to nats")?;
        let stack = Stack { nats, redis, gateway, commands, projectors, client };
        let deadline = Instant::now() + Duration::from_secs(30);
        while stack.client.request("$SRV.PING.chanshare-commands", "".into()).await.is_err() {
            if Instant::now() > deadline {
                bail!("the commands service did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(stack)
    }

    /// Waits (up to 60 s) until no commit has been made for a second and the projectors have
    /// applied every one, so that a measurement does not start while the system still works
    /// through a backlog (2 000 joins, or the leaves of the sockets of the previous run).
    pub(crate) async fn settle(&self) -> anyhow::Result<()> {
        self.settle_within(Duration::from_secs(60)).await
    }

    /// [`Stack::settle`], waiting up to `limit`.
    pub(crate) async fn settle_within(&self, limit: Duration) -> anyhow::Result<()> {
        let log = eventlog::EventLog::open(self.client.clone()).await?;
        let durable = log.durable(eventlog::consumer::PROJECTOR).await?;
        let deadline = Instant::now() + limit;
        let mut last = (log.last_seq().await?, Instant::now());
        loop {
            let seq = log.last_seq().await?;
            if seq != last.0 {
                last = (seq, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(1)
                && durable.lag().await?.commits == 0
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the log did not settle within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every process of the run, this one (the clients) included, by name.
    pub(crate) fn processes(&self) -> Vec<(&'static str, u32)> {
        let mut processes = vec![
            ("gateway", self.gateway.pid()),
            ("commands", self.commands.pid()),
            ("projectors", self.projectors.pid()),
            ("bench clients", std::process::id()),
        ];
        processes.extend(self.nats.pid().map(|pid| ("nats-server", pid)));
        processes.extend(self.redis.pid().map(|pid| ("redis-server", pid)));
        processes
    }

    /// Creates a room with two direct media URLs, as the API would.
    pub(crate) async fn create_room(&self) -> anyhow::Result<Room> {
        create_room(&self.client).await
    }

    /// Gives `room` a history up to `version` through the commands service: the host sends
    /// `command(n)` for n = 0, 1, … (a command that changes nothing makes no commit). The
    /// version reached.
    pub(crate) async fn fill(
        &self,
        room: &Room,
        version: u64,
        command: impl Fn(u64) -> Command,
    ) -> anyhow::Result<u64> {
        let (mut reached, mut n) = (1, 0);
        while reached < version {
            reached = self.command(room, command(n)).await?;
            n += 1;
        }
        Ok(reached)
    }

    /// Sends `command` as the room's host straight to the commands service; the room version.
    pub(crate) async fn command(&self, room: &Room, command: Command) -> anyhow::Result<u64> {
        self.command_with_id(room, CommandId(uuid::Uuid::new_v4()), command).await
    }

    /// As [`Stack::command`], with the caller's command id.
    pub(crate) async fn command_with_id(
        &self,
        room: &Room,
        id: CommandId,
        command: Command,
    ) -> anyhow::Result<u64> {
        command_with_id(&self.client, room, id, command).await
    }
}

/// Creates a room with two direct media URLs through the commands service on `client`'s NATS.
pub(crate) async fn create_room(client: &async_nats::Client) -> anyhow::Result<Room> {
    let request = json!({"source": {"urls": [
        "https://media.example/a.webm", "https://media.example/b.webm"
    ]}});
    let reply = client.request(CREATE_SUBJECT, request.to_string().into()).await?;
    match serde_json::from_slice(&reply.payload)? {
        CreateReply::Created { room_id, member_id, host_token, .. } => {
            Ok(Room { id: room_id, host: member_id, token: host_token })
        }
        other => bail!("room not created: {other:?}"),
    }
}

/// Sends `command` with id `id` as `room`'s host straight to the commands service; the version.
pub(crate) async fn command_with_id(
    client: &async_nats::Client,
    room: &Room,
    id: CommandId,
    command: Command,
) -> anyhow::Result<u64> {
    let request =
        CommandRequest { id, actor: Actor::Member(room.host.clone()), command, traceparent: None };
    let payload = serde_json::to_vec(&request)?;
    let reply = client.request(command_subject(&room.id), payload.into()).await?;
    match serde_json::from_slice(&reply.payload)? {
        CommandReply::Accepted { version } => Ok(version),
        other => bail!("command refused: {other:?}"),
    }
}

pub(crate) fn env(nats: &NatsServer, redis: &RedisServer) -> Vec<(&'static str, String)> {
    let mut env = tests::chanshare::env(nats, redis, tests::chanshare::SECRET);
    env.extend([
        ("CHANSHARE_CONNECTIONS_PER_IP", "1000000".to_owned()),
        ("CHANSHARE_CREATIONS_PER_MINUTE", "1000000".to_owned()),
        ("CHANSHARE_COMMANDS_PER_SECOND", "1000000".to_owned()),
        ("CHANSHARE_DM_SENDS_PER_MINUTE", "1000000".to_owned()),
        ("CHANSHARE_IDLE_SECS", "3600".to_owned()),
        ("RUST_LOG", "warn,stack::serve=info".to_owned()),
    ]);
    env
}

/// A seek to a position no earlier seek in this run used (a seek to the same spot is a no-op).
pub(crate) fn seek(n: u64) -> Command {
    Command::Seek { position_ms: 1000 + n % 3_600_000 }
}

/// Resident memory of process `pid`, in bytes.
pub(crate) fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}

/// Resident memory once it stops moving (joins are still being fanned out for a moment).
pub(crate) async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut last = rss(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss(pid)?;
        if now.abs_diff(last) < last / 200 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// CPU time used by a set of processes over a stretch of a run.
pub(crate) struct CpuMeter {
    start: Vec<(&'static str, u32, f64)>,
}

impl CpuMeter {
    /// Starts measuring `processes`.
    pub(crate) fn start(processes: &[(&'static str, u32)]) -> anyhow::Result<CpuMeter> {
        let start = processes
            .iter()
            .map(|&(name, pid)| Ok((name, pid, cpu_seconds(pid)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(CpuMeter { start })
    }

    /// Microseconds of CPU per operation since the start, by process, for `ops` operations;
    /// processes that used none are left out.
    /// Processes of the same name (several gateways) are added up.
    pub(crate) fn per_op(&self, ops: usize) -> anyhow::Result<String> {
        let mut parts = Vec::new();
        let mut total = 0.0;
        for (name, seconds) in self.seconds()? {
            let us = seconds * 1e6 / ops.max(1) as f64;
            total += us;
            if us >= 0.5 {
                parts.push(format!("{name} {us:.0}"));
            }
        }
        Ok(format!("{total:.0} µs ({})", parts.join(", ")))
    }

    /// CPU seconds since the start by process name (processes of one name added up), in the
    /// order the names first came.
    pub(crate) fn seconds(&self) -> anyhow::Result<Vec<(&'static str, f64)>> {
        let mut by_name: Vec<(&'static str, f64)> = Vec::new();
        for &(name, pid, start) in &self.start {
            // A process that has ended (a killed gateway) used nothing more.
            let used = cpu_seconds(pid).map_or(0.0, |now| now - start);
            match by_name.iter_mut().find(|(seen, _)| *seen == name) {
                Some((_, total)) => *total += used,
                None => by_name.push((name, used)),
            }
        }
        Ok(by_name)
    }
}

/// CPU seconds (user + system, all threads) process `pid` has used.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 14th and 15th fields, the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks =
        |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).context("no cpu times");
    // Linux reports them in USER_HZ, 100 per second on every architecture it supports.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
