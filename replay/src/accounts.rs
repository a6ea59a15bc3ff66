//! `replay accounts`: who signed up, when, and their sessions, read from the account stream and
//! the session bucket. Never a password hash or a token digest: the lines are built from the
//! fields below only.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use crate::format_time;

/// One account as printed.
#[derive(Debug, Serialize)]
struct Line {
    username: String,
    account_id: String,
    registered: String,
    sessions_active: usize,
    sessions_revoked: usize,
}

/// Prints every account (a table, or JSON lines).
pub async fn accounts(
    store: &accounts::Store,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let families = store.families().await?;
    let mut lines: Vec<Line> = store
        .all_accounts()
        .await?
        .into_iter()
        .map(|account| {
            let of = families.values().filter(|f| f.account_id == account.account_id);
            let (revoked, active): (Vec<_>, Vec<_>) = of.partition(|f| f.revoked);
            Line {
                username: account.username.to_string(),
                account_id: account.account_id.to_string(),
                registered: format_time(account.created_ms),
                sessions_active: active.len(),
                sessions_revoked: revoked.len(),
            }
        })
        .collect();
    lines.sort_by(|a, b| a.username.cmp(&b.username));
    if !json {
        writeln!(
            out,
            "{:<32} {:<36}  {:<25} {:>6} {:>7}",
            "username", "account", "registered", "active", "revoked"
        )?;
    }
    for line in &lines {
        if json {
            writeln!(out, "{}", serde_json::to_string(line)?)?;
        } else {
            writeln!(
                out,
                "{:<32} {:<36}  {:<25} {:>6} {:>7}",
                line.username,
                line.account_id,
                line.registered,
                line.sessions_active,
                line.sessions_revoked
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
