//! Scale-out on one machine, the layout of `scale` and `storm`: one NATS, one Redis, one
//! commands and one projectors process, several `chanshare gateway` processes, and several
//! client processes ([`Swarm`]s). A process may hold 20 000 open files here, so neither one
//! gateway nor one client process could hold 100 000 sockets.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};

use crate::report::Latencies;
use crate::stack::{Room, Stack, env, settled_rss};
use crate::swarm::{Answer, Order, Seat, Swarm};
use tests::Chanshare;

/// The running cluster.
pub(crate) struct Cluster {
    pub(crate) stack: Stack,
    /// Gateways after the stack's own, which is gateway 0; `None` once killed.
    more: Vec<Option<Chanshare>>,
    pub(crate) gateways: Vec<SocketAddr>,
    pub(crate) swarms: Vec<Swarm>,
}

/// What opening a set of seats came to.
pub(crate) struct Opened {
    pub(crate) opened: usize,
    pub(crate) welcomes: Latencies,
}

impl Cluster {
    /// Starts the servers, `gateways` gateways and `swarms` client processes.
    pub(crate) async fn start(gateways: usize, swarms: usize) -> anyhow::Result<Cluster> {
        let stack = Stack::start().await?;
        let env = env(&stack.nats, &stack.redis);
        let more: Vec<_> = (1..gateways).map(|_| Some(Chanshare::start("gateway", &env))).collect();
        let mut addrs = vec![stack.gateway.addr().parse()?];
        for gateway in more.iter().flatten() {
            addrs.push(gateway.addr().parse()?);
        }
        let swarms = (0..swarms).map(|_| Swarm::start()).collect::<anyhow::Result<_>>()?;
        Ok(Cluster { stack, more, gateways: addrs, swarms })
    }

    /// Gateway `g`'s process id, `None` once killed.
    pub(crate) fn gateway_pid(&self, g: usize) -> Option<u32> {
        match g {
            0 => Some(self.stack.gateway.pid()),
            _ => self.more.get(g - 1)?.as_ref().map(Chanshare::pid),
        }
    }

    /// Every live process of the run by name: the stack's, the other gateways and the swarms.
    pub(crate) fn processes(&self) -> Vec<(&'static str, u32)> {
        let mut processes = self.stack.processes();
        processes.retain(|(name, _)| *name != "bench clients");
        processes.extend(self.more.iter().flatten().map(|gateway| ("gateway", gateway.pid())));
        processes.extend(self.swarms.iter().map(|swarm| ("clients", swarm.pid())));
        processes
    }

    /// Kills gateway `g` (not 0, the stack's own) with SIGKILL: its sockets just end.
    pub(crate) fn kill(&mut self, g: usize) -> anyhow::Result<()> {
        let slot =
            g.checked_sub(1).and_then(|i| self.more.get_mut(i)).context("no such gateway")?;
        drop(slot.take());
        Ok(())
    }

    /// What the live gateways and the commands service logged so far.
    pub(crate) fn logs(&self) -> String {
        let mut logs = self.stack.gateway.log();
        logs.push_str(&self.stack.commands.log());
        for gateway in self.more.iter().flatten() {
            logs.push_str(&gateway.log());
        }
        logs
    }

    /// The last warnings of the servers: what a failed run shows.
    pub(crate) fn troubles(&self) -> String {
        let nats = std::fs::read_to_string(self.stack.nats.log_path()).unwrap_or_default();
        let logs = self.logs();
        let warned = logs.lines().filter(|line| line.contains("WARN") || line.contains("ERROR"));
        let nats = nats.lines().filter(|line| line.contains("[WRN]") || line.contains("[ERR]"));
        let last = |lines: Vec<&str>| lines[lines.len().saturating_sub(8)..].join("\n");
        format!("chanshare:\n{}\nnats-server:\n{}", last(warned.collect()), last(nats.collect()))
    }

    /// `n` rooms, created through the commands service.
    pub(crate) async fn create_rooms(&self, n: usize) -> anyhow::Result<Vec<Room>> {
        let mut rooms = Vec::with_capacity(n);
        while rooms.len() < n {
            let batch = (n - rooms.len()).min(64);
            let created = futures::future::try_join_all(
                (0..batch).map(|_| crate::stack::create_room(&self.stack.client)),
            )
            .await?;
            rooms.extend(created);
        }
        Ok(rooms)
    }

    /// Opens `seats`, each in the swarm its number picks (socket n of `total` goes to swarm
    /// n × swarms / total, so each swarm holds a run of rooms); fails when any cannot open.
    pub(crate) async fn open(&mut self, seats: &[Seat], total: usize) -> anyhow::Result<Opened> {
        let swarms = self.swarms.len();
        let mut shares = vec![Vec::new(); swarms];
        for seat in seats {
            shares[(seat.n * swarms / total.max(1)).min(swarms - 1)].push(seat.clone());
        }
        let gateways = self.gateways.clone();
        let answers = futures::future::try_join_all(self.swarms.iter_mut().zip(shares).map(
            |(swarm, seats)| {
                let order = Order::Open { gateways: gateways.clone(), seats };
                async move { swarm.ask(&order).await }
            },
        ))
        .await?;
        let mut opened = Opened { opened: 0, welcomes: Latencies::default() };
        for answer in answers {
            let Answer::Opened { opened: n, failed, error, welcome_ms } = answer else {
                bail!("expected opened, got {answer:?}");
            };
            if failed > 0 {
                bail!(
                    "{failed} sockets did not open: {}\n{}",
                    error.unwrap_or_default(),
                    self.troubles()
                );
            }
            opened.opened += n;
            for ms in welcome_ms {
                opened.welcomes.push(std::time::Duration::from_secs_f64(ms / 1000.0));
            }
        }
        Ok(opened)
    }

    /// Each live gateway's resident memory once it stops moving (`None` for a killed one).
    pub(crate) async fn gateway_rss(&self) -> anyhow::Result<Vec<Option<u64>>> {
        let mut rss = Vec::new();
        for g in 0..self.gateways.len() {
            rss.push(match self.gateway_pid(g) {
                Some(pid) => Some(settled_rss(pid).await?),
                None => None,
            });
        }
        Ok(rss)
    }
}

/// The seats of `room`: members `first..first + n` of the scenario, spread over `gateways`
/// round robin (a load balancer's choice), the first of them its host.
pub(crate) fn seats(room: &Room, first: usize, n: usize, gateways: usize) -> Vec<Seat> {
    (first..first + n)
        .map(|n_| Seat {
            n: n_,
            room: room.id.to_string(),
            gateway: n_ % gateways,
            host_token: (n_ == first).then(|| room.token.clone()),
        })
        .collect()
}

/// The seats on each gateway.
pub(crate) fn per_gateway(seats: &[Seat], gateways: usize) -> Vec<usize> {
    let mut counts = vec![0; gateways];
    for seat in seats {
        counts[seat.gateway] += 1;
    }
    counts
}
