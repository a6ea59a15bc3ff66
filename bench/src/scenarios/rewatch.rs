//! `rewatch`: how long a rewatch of a room with a long history takes to start playing (issue
//! 24, item 4). A room of 100 000 real commits (a seven-hour session made by `decide`) is
//! appended to the log; the commands role's snapshotter brings its snapshot to the head, keeping
//! a checkpoint every 500 versions on the way; then the gateway is asked what the rewatch page
//! asks, over HTTP:
//!
//! - opening: the session's timeline (`/rewatch`), the state at the start (`/rewatch/state`) and
//!   the first page of commits after it (`/events`): what the page waits for before it plays; the
//!   first open reads the whole log for the timeline, later ones find it cached;
//! - the cached timeline alone;
//! - a deep link or a scrub to a random point, by version and by time: the state there (folded
//!   from the nearest checkpoint) and the commits after it.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventlog::EventLog;
use events::RoomId;
use serde_json::Value;

use crate::Size;
use crate::history::History;
use crate::report::{Latencies, Report, ms};
use crate::stack::Stack;

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let commits = size.pick(100_000, 3_000);
    let samples = size.pick(50, 10);
    let stack = Stack::start_with(&[("CHANSHARE_SNAPSHOT_INTERVAL_SECS", "1")]).await?;
    let log = EventLog::open(stack.client.clone()).await?;
    let room = RoomId::new("rewatch-bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut history = History::new(room.clone());
    let mut last = 0;
    let mut times = Vec::with_capacity(commits as usize);
    for _ in 0..commits {
        let commit = history.next_commit()?;
        times.push(commit.at_ms);
        last = log.append(last, &commit, None).await?.position.seq;
    }
    // The snapshotter's checkpoints, as a room that lived this long has them.
    let deadline = Instant::now() + Duration::from_secs(300);
    while log.snapshot(&room).await?.is_none_or(|s| s.state.version < commits) {
        if Instant::now() > deadline {
            bail!("the snapshotter did not reach the head within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.settle().await?;

    let http = reqwest::Client::new();
    let base = format!("http://{}/api/rooms/{room}", stack.gateway.addr());
    let get = |path: String| {
        let http = http.clone();
        async move {
            let response = http.get(path).send().await?;
            let status = response.status();
            let body: Value = serde_json::from_slice(&response.bytes().await?)?;
            if !status.is_success() {
                bail!("{status}: {body}");
            }
            anyhow::Ok(body)
        }
    };

    let mut report = Report::new("rewatch", &["what", "samples", "p50 ms", "p99 ms", "max ms"]);
    let mut row = |what: &str, latencies: &mut Latencies| {
        report.row(vec![
            what.to_owned(),
            latencies.len().to_string(),
            ms(latencies.quantile(0.5)),
            ms(latencies.quantile(0.99)),
            ms(latencies.quantile(1.0)),
        ]);
        latencies.quantile(0.99)
    };

    // The first open pays for the timeline's read of the whole log.
    let started = Instant::now();
    let timeline = get(format!("{base}/rewatch")).await?;
    let state = get(format!("{base}/rewatch/state?version=1")).await?;
    let version = state["version"].as_u64().context("version")?;
    get(format!("{base}/events?after={version}&limit=1000")).await?;
    let mut first = Latencies::default();
    first.push(started.elapsed());
    let end = timeline["timeline"]["end"]["version"].as_u64().context("end version")?;
    anyhow::ensure!(end == commits, "the timeline ends at {end}, not {commits}");
    let first_open =
        row("first open: timeline (reads the whole log) + state + first commits", &mut first);
    let mut cached = Latencies::default();
    for _ in 0..samples {
        let started = Instant::now();
        get(format!("{base}/rewatch")).await?;
        cached.push(started.elapsed());
    }
    row("timeline, cached", &mut cached);

    // What the page waits for before it plays.
    let mut open = Latencies::default();
    for _ in 0..samples {
        let started = Instant::now();
        get(format!("{base}/rewatch")).await?;
        let state = get(format!("{base}/rewatch/state?version=1")).await?;
        let version = state["version"].as_u64().context("version")?;
        get(format!("{base}/events?after={version}&limit=1000")).await?;
        open.push(started.elapsed());
    }
    let open_p99 = row("open again: timeline (cached) + state + first commits", &mut open);

    // Deep links and scrubs to points all over the history.
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let (mut by_version, mut by_time) = (Latencies::default(), Latencies::default());
    for _ in 0..samples {
        let version = 1 + random(commits);
        let started = Instant::now();
        get(format!("{base}/rewatch/state?version={version}")).await?;
        get(format!("{base}/events?after={version}&limit=1000")).await?;
        by_version.push(started.elapsed());

        let at = times[random(commits) as usize];
        let started = Instant::now();
        let state = get(format!("{base}/rewatch/state?at_ms={at}")).await?;
        let version = state["version"].as_u64().context("version")?;
        get(format!("{base}/events?after={version}&limit=1000")).await?;
        by_time.push(started.elapsed());
    }
    let version_p99 = row("scrub to a version: state + first commits", &mut by_version);
    let time_p99 = row("scrub to a time: state + first commits", &mut by_time);
    let worst = first_open.max(open_p99).max(version_p99).max(time_p99);
    report.at_most(
        "rewatch of a 100 000-commit room plays within (p99, ms)",
        worst.as_secs_f64() * 1000.0,
        "<= 1000",
        1000.0,
    );
    report.note(format!(
        "{commits} commits, one room, {} h of session; checkpoints every {} versions (a fold \
         reads at most that many commits); every read is a real HTTP request to the gateway \
         process, which reads the log and Redis.",
        (times.last().copied().unwrap_or(0) - times.first().copied().unwrap_or(0)) / 3_600_000,
        eventlog::snapshot::CHECKPOINT_EVERY
    ));
    Ok(report)
}
