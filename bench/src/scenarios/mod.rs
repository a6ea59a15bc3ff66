//! One module per scenario; each returns its [`Report`].

mod abuse;
mod accounts;
mod bigroom;
mod commands;
mod connections;
mod content;
mod dms;
mod fanout;
mod join;
mod replay;
mod rewatch;
mod scale;
mod sizing;
mod storm;

use crate::report::Report;
use crate::{Scenario, Size};

/// Runs `scenario` at `size`.
pub(crate) async fn run(scenario: Scenario, size: Size) -> anyhow::Result<Report> {
    match scenario {
        Scenario::Connections => connections::run(size).await,
        Scenario::Fanout => fanout::run(size).await,
        Scenario::Commands => commands::run(size).await,
        Scenario::Join => join::run(size).await,
        Scenario::Replay => replay::run(size).await,
        Scenario::Content => content::run(size).await,
        Scenario::Abuse => abuse::run(size).await,
        Scenario::Accounts => accounts::run(size).await,
        Scenario::Dms => dms::run(size).await,
        Scenario::Sizing => sizing::run(size).await,
        Scenario::Rewatch => rewatch::run(size).await,
        Scenario::Bigroom => bigroom::run(size).await,
        Scenario::Scale => scale::run(size).await,
        Scenario::Storm => storm::run(size).await,
    }
}
