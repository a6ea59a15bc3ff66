//! Account metrics: sign-ups, sign-ins by outcome, refreshes, and refresh-token reuse.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// The counters.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Accounts registered.
    pub signups: IntCounter,
    /// Sign-ins by outcome: `ok`, `failed` (bad credentials), `limited` (throttled).
    pub logins: IntCounterVec,
    /// Refresh tokens spent for a new pair.
    pub refreshes: IntCounter,
    /// Spent refresh tokens presented again (each revoked a family).
    pub refresh_reuse: IntCounter,
}

impl Metrics {
    /// Creates the counters in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            signups: IntCounter::new("chanshare_account_signups_total", "Accounts registered")?,
            logins: IntCounterVec::new(
                Opts::new(
                    "chanshare_account_logins_total",
                    "Sign-ins by outcome (ok, failed, limited)",
                ),
                &["outcome"],
            )?,
            refreshes: IntCounter::new(
                "chanshare_account_refreshes_total",
                "Refresh tokens spent for a new pair",
            )?,
            refresh_reuse: IntCounter::new(
                "chanshare_account_refresh_reuse_total",
                "Spent refresh tokens presented again; each revoked its family",
            )?,
        };
        registry.register(Box::new(metrics.signups.clone()))?;
        registry.register(Box::new(metrics.logins.clone()))?;
        registry.register(Box::new(metrics.refreshes.clone()))?;
        registry.register(Box::new(metrics.refresh_reuse.clone()))?;
        for outcome in ["ok", "failed", "limited"] {
            metrics.logins.with_label_values(&[outcome]);
        }
        Ok(metrics)
    }
}
