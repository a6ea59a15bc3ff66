//! `scale`: 100 000 sockets over six `chanshare gateway` processes against one NATS and Redis
//! (issue 22, item 3): 90 000 members in rooms of 50 and one room of 10 000, each member's
//! gateway chosen round robin (as a load balancer would, so every room has members on every
//! gateway), held by six client processes.
//!
//! Memory is measured as in `connections`: each gateway's resident memory once every room has
//! one member on it (so rooms, hubs, subscriptions and warm-up are in the "before") and again
//! once everyone has joined; (after − before) / members who joined in between is what an idle
//! socket costs that gateway. CPU is read over the joins and over ten idle seconds after them.
//! Then the big room's host seeks ten times, 500 ms apart: the time from sending each seek to
//! each of the 10 000 members receiving its commit frame.

use std::time::{Duration, Instant};

use events::CommandId;

use crate::Size;
use crate::cluster::{Cluster, per_gateway, seats};
use crate::report::{Latencies, Report, fmt, ms};
use crate::stack::{CpuMeter, command_with_id, seek};
use crate::swarm::{Answer, Order, ask_all, now_us};

const PER_ROOM: usize = 50;
const SEEKS: usize = 10;

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let gateways = size.pick(6, 2);
    let big = size.pick(10_000, 150);
    let small = size.pick(90_000, 200);
    let mut cluster = Cluster::start(gateways, size.pick(6, 2)).await?;
    let big_room = cluster.stack.create_room().await?;
    let rooms = cluster.create_rooms(small / PER_ROOM).await?;
    let total = big + small;
    // Each room's first members, one on every gateway, are the "before"; the rest join after.
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    let mut place = |seats: Vec<crate::swarm::Seat>| {
        let (head, tail) = seats.split_at(gateways.min(seats.len()));
        first.extend_from_slice(head);
        rest.extend_from_slice(tail);
    };
    place(seats(&big_room, 0, big, gateways));
    for (r, room) in rooms.iter().enumerate() {
        place(seats(room, big + r * PER_ROOM, PER_ROOM, gateways));
    }
    let joined_per_gateway = per_gateway(&rest, gateways);
    let first_per_gateway = per_gateway(&first, gateways);
    let all_per_gateway: Vec<usize> =
        first_per_gateway.iter().zip(&joined_per_gateway).map(|(a, b)| a + b).collect();

    let idle = cluster.gateway_rss().await?;
    cluster.open(&first, total).await?;
    cluster.stack.settle().await?;
    let before = cluster.gateway_rss().await?;
    let cpu = CpuMeter::start(&cluster.processes())?;
    let started = Instant::now();
    let mut opened = cluster.open(&rest, total).await?;
    let opened_per_s = opened.opened as f64 / started.elapsed().as_secs_f64();
    cluster.stack.settle_within(Duration::from_secs(300)).await?;
    let join_cpu = cpu.per_op(opened.opened)?;
    let after = cluster.gateway_rss().await?;
    let open_now = crate::swarm::status(&mut cluster.swarms).await?.open;

    let cpu = CpuMeter::start(&cluster.processes())?;
    let quiet = Duration::from_secs(size.pick(10, 2));
    tokio::time::sleep(quiet).await;
    let idle_cpu = cpu.seconds()?;

    // Seeks in the big room, from its host.
    let (mut arrivals, mut all_have_it) = (Latencies::default(), Latencies::default());
    let mut missing = 0;
    for s in 0..SEEKS {
        let id = uuid::Uuid::new_v4();
        ask_all(&mut cluster.swarms, &Order::Watch { command_id: id.to_string() }).await?;
        let sent = now_us();
        command_with_id(&cluster.stack.client, &big_room, CommandId(id), seek(s as u64)).await?;
        let order = Order::Arrivals { command_id: id.to_string(), room: big_room.id.to_string() };
        let mut last = 0;
        for answer in ask_all(&mut cluster.swarms, &order).await? {
            let Answer::Arrivals { at_us, missing: m } = answer else {
                anyhow::bail!("expected arrivals, got {answer:?}");
            };
            missing += m;
            for at in at_us {
                last = last.max(at);
                arrivals.push(Duration::from_micros(at.saturating_sub(sent)));
            }
        }
        all_have_it.push(Duration::from_micros(last.saturating_sub(sent)));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut report = Report::new(
        "scale",
        &[
            "gateway",
            "sockets",
            "RSS idle MiB",
            "before MiB",
            "after MiB",
            "KiB/socket",
            "KiB/socket with rooms",
        ],
    );
    let mut worst: f64 = 0.0;
    for g in 0..gateways {
        let (idle, before, after) =
            (idle[g].unwrap_or(0), before[g].unwrap_or(0), after[g].unwrap_or(0));
        let per_socket =
            after.saturating_sub(before) as f64 / joined_per_gateway[g].max(1) as f64 / 1024.0;
        let with_rooms =
            after.saturating_sub(idle) as f64 / all_per_gateway[g].max(1) as f64 / 1024.0;
        worst = worst.max(per_socket);
        report.row(vec![
            g.to_string(),
            all_per_gateway[g].to_string(),
            fmt(idle as f64 / 1048576.0),
            fmt(before as f64 / 1048576.0),
            fmt(after as f64 / 1048576.0),
            fmt(per_socket),
            fmt(with_rooms),
        ]);
    }
    let idle_cpu: Vec<String> = idle_cpu
        .iter()
        .map(|(name, seconds)| format!("{name} {:.1}%", seconds * 100.0 / quiet.as_secs_f64()))
        .collect();
    report.note(format!(
        "{total} sockets ({big} in one room, {small} in rooms of {PER_ROOM}) over {gateways} gateways \
         and {} client processes; {open_now} open at the end; joins {} a second (welcome p50 {} ms, \
         p99 {} ms); CPU per join, by process: {join_cpu}; CPU while idle, of one core: {}.",
        cluster.swarms.len(),
        fmt(opened_per_s),
        ms(opened.welcomes.quantile(0.5)),
        ms(opened.welcomes.quantile(0.99)),
        idle_cpu.join(", "),
    ));
    report.note(format!(
        "{SEEKS} seeks in the room of {big}: a member has the commit after p50 {} ms, p99 {} ms, \
         max {} ms; every member has it after p50 {} ms, max {} ms; {missing} arrivals missing.",
        ms(arrivals.quantile(0.5)),
        ms(arrivals.quantile(0.99)),
        ms(arrivals.quantile(1.0)),
        ms(all_have_it.quantile(0.5)),
        ms(all_have_it.quantile(1.0)),
    ));
    report.at_least("sockets open at once", open_now as f64, ">= 100 000", 100_000.0);
    report.at_most("largest gateway KiB per idle socket", worst, "<= 8 KiB", 8.0);
    report.at_most(
        "seek reaching a member of the room of 10 000, p99 (ms)",
        arrivals.quantile(0.99).as_secs_f64() * 1000.0,
        "<= 250 ms",
        250.0,
    );
    report.at_most("seek arrivals missing", missing as f64, "0", 0.0);
    Ok(report)
}
