//! Rate limits: a token bucket per socket, counters per client address.

use std::collections::HashMap;
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
    /// Sockets a client address may open per minute.
    pub sockets_per_minute: usize,
    /// New members a room may gain per minute on one gateway (returning members are not new).
    pub joins_per_minute: usize,
    /// Lookups of rooms that do not exist a client address may make per minute (ids cannot be
    /// guessed; this makes trying expensive too).
    pub misses_per_minute: usize,
    /// `/events` pages a client address may read per minute.
    pub reads_per_minute: usize,
    /// `/events` log reads running at once on one gateway; more wait briefly, then get 503.
    pub log_readers: usize,
    /// The most bytes of commits one `/events` page carries (it ends early, `next_after` says
    /// where to go on).
    pub page_bytes: usize,
    /// A socket that sends nothing for this long is closed (clients ping every few seconds).
    pub idle: Duration,
    /// The most commits a resume replays; further behind gets a snapshot.
    pub resume_cap: u64,
    /// How long a member whose last socket closed cleanly may take to come back before they
    /// are shown offline.
    pub leave_grace: Duration,
    /// Direct messages one account may send a minute through one gateway.
    pub dm_sends_per_minute: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 << 10,
            command_burst: 20.0,
            commands_per_second: 10.0,
            connections_per_ip: 64,
            creations_per_minute: 10,
            sockets_per_minute: 60,
            joins_per_minute: 60,
            misses_per_minute: 30,
            reads_per_minute: 120,
            log_readers: 16,
            page_bytes: 1 << 20,
            idle: Duration::from_secs(60),
            resume_cap: 1000,
            leave_grace: Duration::from_secs(2),
            dm_sends_per_minute: 60,
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

/// Counts events per key in fixed one-minute windows. Memory stays bounded by the keys active in
/// the last minute: stale windows are swept as new keys arrive.
#[derive(Debug)]
pub struct PerMinute<K> {
    windows: Mutex<Windows<K>>,
}

#[derive(Debug)]
struct Windows<K> {
    counts: HashMap<K, (Instant, usize)>,
    swept: Instant,
}

const WINDOW: Duration = Duration::from_secs(60);

impl<K: std::hash::Hash + Eq + Clone> Default for PerMinute<K> {
    fn default() -> Self {
        Self { windows: Mutex::new(Windows { counts: HashMap::new(), swept: Instant::now() }) }
    }
}

impl<K: std::hash::Hash + Eq + Clone> PerMinute<K> {
    /// Counts one event for `key`; false (and not counted) when `limit` were counted this window.
    pub fn take(&self, key: &K, limit: usize, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.sweep(now);
        let (start, count) = windows.counts.entry(key.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            (*start, *count) = (now, 0);
        }
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    /// Whether `key` has used up `limit` this window (nothing is counted).
    pub fn spent(&self, key: &K, limit: usize, now: Instant) -> bool {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows
            .counts
            .get(key)
            .is_some_and(|(start, count)| now.duration_since(*start) < WINDOW && *count >= limit)
    }

    /// Keys with a window open.
    #[cfg(test)]
    fn open_windows(&self) -> usize {
        self.windows.lock().unwrap_or_else(|p| p.into_inner()).counts.len()
    }
}

impl<K: std::hash::Hash + Eq> Windows<K> {
    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.swept) >= WINDOW {
            self.counts.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            self.swept = now;
        }
    }
}

/// Open sockets per client address. A [`Slot`] holds one until it is dropped, whatever ends the
/// socket: a failed upgrade drops the callback that owned it, so its slot comes back too.
#[derive(Debug, Default)]
pub struct Connections {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open socket of an address, counted while it lives.
#[derive(Debug)]
pub struct Slot {
    connections: std::sync::Arc<Connections>,
    key: IpAddr,
}

impl Connections {
    /// A slot for a new socket from `ip`; `None` when the address has `limit` open.
    pub fn open(self: &std::sync::Arc<Self>, ip: IpAddr, limit: usize) -> Option<Slot> {
        let key = tokens::subscriber(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_default();
        if *count >= limit {
            if *count == 0 {
                open.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(Slot { connections: self.clone(), key })
    }

    /// Sockets open from `ip`'s address.
    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&tokens::subscriber(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
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
    fn a_slot_is_released_by_whatever_drops_it() {
        let connections = std::sync::Arc::new(Connections::default());
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let (a, b) = (connections.open(ip, 2), connections.open(ip, 2));
        assert!(a.is_some() && b.is_some());
        assert!(connections.open(ip, 2).is_none(), "two of two open");
        // An upgrade that fails drops its callback, and the slot the callback owned, unrun.
        let callback = move || drop(a);
        drop(callback);
        assert_eq!(connections.count(ip), 1);
        assert!(connections.open(ip, 2).is_some());
        drop(b);
        assert_eq!(connections.count(ip), 0);
        assert!(connections.open.lock().unwrap().is_empty(), "no entry left behind");
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let connections = std::sync::Arc::new(Connections::default());
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = connections.open(one, 1);
        assert!(connections.open(same, 1).is_none());
        assert!(connections.open(other, 1).is_some());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(tokens::subscriber(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn per_minute_windows_count_reset_and_are_swept() {
        let limiter = PerMinute::default();
        let start = Instant::now();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        assert_eq!((0..12).filter(|_| limiter.take(&ip, 10, start)).count(), 10);
        assert!(limiter.spent(&ip, 10, start));
        let later = start + Duration::from_secs(61);
        assert!(!limiter.spent(&ip, 10, later));
        assert!(limiter.take(&ip, 10, later), "a new window");
        // A thousand addresses seen once leave nothing behind a minute later.
        for n in 0..1000u32 {
            limiter.take(&IpAddr::from(n.to_be_bytes()), 10, later);
        }
        assert_eq!(limiter.open_windows(), 1001);
        limiter.take(&ip, 10, later + Duration::from_secs(61));
        assert_eq!(limiter.open_windows(), 1, "stale windows swept");
    }
}
