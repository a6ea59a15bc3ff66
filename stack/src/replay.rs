//! `chanshare replay …`: read-only over the log (and the views, for verify and rebuild).

use anyhow::Context as _;

use crate::config::Config;
use crate::roles;

/// Runs a replay command; its exit code.
pub async fn run(
    config: Config,
    command: ::replay::Command,
) -> anyhow::Result<std::process::ExitCode> {
    let client = roles::nats_now(&config).await?;
    let log = eventlog::EventLog::open(client.clone())
        .await
        .with_context(|| format!("cannot open the room stream on {}", config.nats_url))?;
    let views = match command {
        ::replay::Command::Verify { .. } | ::replay::Command::Rebuild => {
            Some(views::Views::new(roles::redis(&config).await?))
        }
        _ => None,
    };
    let accounts = match command {
        ::replay::Command::Accounts { .. } => Some(
            accounts::Store::open(async_nats::jetstream::new(client))
                .await
                .context("cannot open the account stream")?,
        ),
        _ => None,
    };
    let context =
        ::replay::Context { log, views, s3_endpoint: config.s3_endpoint.clone(), accounts };
    ::replay::run(command, context).await
}
