//! The direct-message projector: keeps `views::dm` (inboxes, histories, receipt marks) equal to
//! the DM stream. Its writes are idempotent and commutative, so replicas share one durable
//! consumer with no ordering between them; a lost Redis is noticed (the `projected` mark is
//! gone) and rebuilt from the stream.

use std::future::Future;
use std::time::Duration;

use dm::{DmError, DmLog};
use futures::StreamExt;
use tracing::{info, warn};
use views::Views;

/// How often the views are checked for having been lost.
const WATCHDOG: Duration = Duration::from_secs(5);

/// Rebuilds the DM views from the whole stream: the number of events applied.
pub async fn rebuild(log: &DmLog, views: &Views) -> Result<usize, DmError> {
    let unavailable = |e: views::ViewError| DmError::Unavailable(e.to_string());
    views.clear_dm().await.map_err(unavailable)?;
    let items = log.read_all(1).await?;
    for item in &items {
        views.apply_dm(item.seq, &item.conversation, &item.event).await.map_err(unavailable)?;
    }
    views.set_dm_projected().await.map_err(unavailable)?;
    Ok(items.len())
}

/// The durable consumer's deliveries, once they can be had (tried again every second).
async fn open(log: &DmLog) -> impl futures::Stream<Item = Result<dm::Delivery, DmError>> + use<> {
    loop {
        match log.deliveries().await {
            Ok(deliveries) => return deliveries,
            Err(error) => {
                warn!(%error, "dm consumer unavailable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Projects until `shutdown` resolves.
pub async fn run(
    log: DmLog,
    views: Views,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DmError> {
    tokio::pin!(shutdown);
    let mut deliveries = Box::pin(open(&log).await);
    let mut watchdog = tokio::time::interval(WATCHDOG);
    info!("dm projector running");
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            _ = watchdog.tick() => {
                match views.dm_projected().await {
                    Ok(true) => {}
                    Ok(false) => match rebuild(&log, &views).await {
                        Ok(events) => info!(events, "dm views rebuilt"),
                        Err(error) => warn!(%error, "dm views rebuild failed"),
                    },
                    Err(error) => warn!(%error, "dm views unreachable"),
                }
            }
            delivery = deliveries.next() => match delivery {
                Some(Ok(delivery)) => {
                    match &delivery.item {
                        Ok(item) => {
                            if let Err(error) = views.apply_dm(item.seq, &item.conversation, &item.event).await {
                                // Not acknowledged: delivered again after the ack wait.
                                warn!(%error, seq = item.seq, "dm view update failed");
                                continue;
                            }
                        }
                        Err(error) => warn!(%error, "an unreadable dm event, skipped"),
                    }
                    if let Err(error) = delivery.ack().await {
                        warn!(%error, "dm ack failed");
                    }
                }
                Some(Err(error)) => {
                    warn!(%error, "dm consumer delivery failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => {
                    warn!("dm consumer ended; reopening");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    deliveries = Box::pin(open(&log).await);
                }
            },
        }
    }
}
