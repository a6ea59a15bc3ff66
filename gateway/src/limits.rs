//! Rate limits: a token bucket per socket, counters per client address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Configurable limits.
#[derive(Debug, Clone, Copy)]
pub struct GatewayLimits {
    /// Largest frame a client may send.
    pub max_frame_bytes: usize,
    /// Commands a socket may send in a burst.
    pub command_burst: f64,
    /// Commands per second a socket may sustain.
    pub commands_per_second: f64,
    /// Open sockets per client address.
    pub connections_per_ip: usize,
    /// Rooms a client address may create per minute.
    pub creations_per_minute: usize,
    /// A socket that sends nothing for this long is closed (clients ping every few seconds).
    pub idle: Duration,
    /// The most commits a resume replays; further behind gets a snapshot.
    pub resume_cap: u64,
    /// How long a member whose last socket closed cleanly may take to come back before they
    /// are shown offline.
    pub leave_grace: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 << 10,
            command_burst: 20.0,
            commands_per_second: 10.0,
            connections_per_ip: 64,
            creations_per_minute: 10,
            idle: Duration::from_secs(60),
            resume_cap: 1000,
            leave_grace: Duration::from_secs(2),
        }
    }
}

/// A token bucket (CyTube-like: a burst, then a sustained rate).
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(limits: &GatewayLimits) -> Self {
        Self { tokens: limits.command_burst, at: Instant::now() }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, limits: &GatewayLimits, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() * limits.commands_per_second;
        self.tokens = (self.tokens + refill).min(limits.command_burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Per-address counters.
#[derive(Debug, Default)]
pub struct PerIp {
    connections: Mutex<HashMap<IpAddr, usize>>,
    creations: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl PerIp {
    /// Counts a new socket from `ip`; false when it has too many.
    pub fn connect(&self, ip: IpAddr, limit: usize) -> bool {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let count = connections.entry(ip).or_default();
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    /// Counts a closed socket from `ip`.
    pub fn disconnect(&self, ip: IpAddr) {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = connections.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                connections.remove(&ip);
            }
        }
    }

    /// Counts a room creation from `ip`; false when over the per-minute limit.
    pub fn create(&self, ip: IpAddr, per_minute: usize) -> bool {
        let mut creations = self.creations.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let recent = creations.entry(ip).or_default();
        while recent.front().is_some_and(|at| now.duration_since(*at) > Duration::from_secs(60)) {
            recent.pop_front();
        }
        if recent.len() >= per_minute {
            return false;
        }
        recent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let limits = GatewayLimits::default();
        let start = Instant::now();
        let mut bucket = Bucket { tokens: limits.command_burst, at: start };
        assert_eq!((0..25).filter(|_| bucket.take(&limits, start)).count(), 20);
        assert!(!bucket.take(&limits, start));
        assert!(bucket.take(&limits, start + Duration::from_millis(100)), "refilled at 10/s");
        assert!(!bucket.take(&limits, start + Duration::from_millis(100)));
    }

    #[test]
    fn per_ip_counters() {
        let counters = PerIp::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        assert!(counters.connect(ip, 2) && counters.connect(ip, 2));
        assert!(!counters.connect(ip, 2));
        counters.disconnect(ip);
        assert!(counters.connect(ip, 2));
        assert_eq!((0..12).filter(|_| counters.create(ip, 10)).count(), 10);
    }
}
