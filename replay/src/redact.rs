//! Chat deleted after an earlier export archived its posting: the posting is found in the log
//! (its stream sequence and day), and the archive file that holds it is rewritten with the
//! message shown as deleted, like every reader of the history shows it.

use std::collections::{BTreeMap, HashSet};

use anyhow::Context as _;
use eventlog::EventLog;
use events::{Event, MessageId, RoomId};
use futures::StreamExt as _;
use object_store::{ObjectStoreExt as _, PutPayload};
use parquet::file::reader::{FileReader as _, SerializedFileReader};
use parquet::record::{Field, RowAccessor as _};

use crate::archive::{ArchiveFormat, Deleted, Row, Target, parquet_file};

/// Redacts, in files written by earlier runs (stream sequences up to `archived`), the postings
/// of messages in `deleted`. Returns how many were redacted, and how many could not be found
/// because their commit has left the log.
pub(crate) async fn earlier(
    log: &EventLog,
    target: &Target,
    format: ArchiveFormat,
    deleted: &Deleted,
    archived: u64,
) -> anyhow::Result<(u64, u64)> {
    if archived == 0 || deleted.is_empty() {
        return Ok((0, 0));
    }
    // The postings of the deleted messages that earlier runs exported: (day, seq) → messages.
    let mut rooms: BTreeMap<RoomId, HashSet<MessageId>> = BTreeMap::new();
    for (room, message) in deleted {
        rooms.entry(room.clone()).or_default().insert(message.clone());
    }
    let mut files: BTreeMap<(String, u64), Vec<(RoomId, MessageId)>> = BTreeMap::new();
    let mut lost = 0u64;
    for (room, mut left) in rooms {
        let mut commits = match log.read(&room, 0).await {
            Ok(commits) => commits,
            // The room's first commits have left the log, and with them where its early
            // messages were archived.
            Err(eventlog::LogError::Expired { .. }) => {
                lost += left.len() as u64;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        while let Some(stored) = commits.next().await {
            if left.is_empty() {
                break;
            }
            let Ok(stored) = stored else { continue };
            for event in &stored.commit.events {
                if let Event::ChatPosted { message } = event
                    && left.remove(&message.id)
                    && stored.seq <= archived
                {
                    // Archived by an earlier run (later postings are this run's, redacted as
                    // they are written).
                    let day = crate::format_time(stored.commit.at_ms)[..10].to_owned();
                    let at = files.entry((day, stored.seq)).or_default();
                    at.push((room.clone(), message.id.clone()));
                }
            }
        }
        lost += left.len() as u64;
    }
    let mut redacted = 0;
    for ((day, seq), messages) in files {
        redacted += rewrite(target, format, &day, seq, &messages).await?;
    }
    Ok((redacted, lost))
}

/// Rewrites the file of `day` that covers stream sequence `seq`, redacting `messages`; how many
/// rows it redacted.
async fn rewrite(
    target: &Target,
    format: ArchiveFormat,
    day: &str,
    seq: u64,
    messages: &[(RoomId, MessageId)],
) -> anyhow::Result<u64> {
    let extension = match format {
        ArchiveFormat::Parquet => "parquet",
        ArchiveFormat::Ndjson => "ndjson",
    };
    let prefix = target.path(&format!("date={day}"));
    let mut listing = target.store.list(Some(&prefix));
    let mut name = None;
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        let file = meta.location.filename().unwrap_or_default().to_owned();
        let range = file
            .strip_prefix("part-")
            .and_then(|rest| rest.strip_suffix(&format!(".{extension}")))
            .and_then(|range| range.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        if range.is_some_and(|(first, last)| (first..=last).contains(&seq)) {
            name = Some(meta.location);
            break;
        }
    }
    let Some(path) = name else { return Ok(0) };
    let bytes = target.store.get(&path).await?.bytes().await?;
    let is_deleted =
        |room: &str, id: &str| messages.iter().any(|(r, m)| r.as_str() == room && m.as_str() == id);
    let mut redacted = 0;
    let body = match format {
        ArchiveFormat::Ndjson => {
            let mut body = Vec::with_capacity(bytes.len());
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let mut row: serde_json::Value =
                    serde_json::from_slice(line).context("an unreadable archive row")?;
                let room = row["room_id"].as_str().unwrap_or_default().to_owned();
                if events::json::redact_event(&mut row["event"], &|id| is_deleted(&room, id)) {
                    redacted += 1;
                }
                serde_json::to_writer(&mut body, &row)?;
                body.push(b'\n');
            }
            body
        }
        ArchiveFormat::Parquet => {
            let reader = SerializedFileReader::new(bytes)?;
            let mut rows = Vec::new();
            for record in reader.get_row_iter(None)? {
                let record = record?;
                let mut row = Row {
                    room_id: record.get_string(0)?.clone(),
                    version: record.get_long(1)? as u64,
                    stream_seq: record.get_long(2)? as u64,
                    at_ms: match record.get_column_iter().nth(3).map(|(_, field)| field) {
                        Some(Field::TimestampMillis(ms)) => *ms as u64,
                        _ => record.get_long(3)? as u64,
                    },
                    at: String::new(),
                    actor: record.get_string(4)?.clone(),
                    command_id: record.get_string(5)?.clone(),
                    event_index: record.get_int(6)? as u32,
                    event_type: record.get_string(7)?.clone(),
                    event: serde_json::from_str(record.get_string(8)?)?,
                };
                row.at = crate::format_time(row.at_ms);
                let room = row.room_id.clone();
                if events::json::redact_event(&mut row.event, &|id| is_deleted(&room, id)) {
                    redacted += 1;
                }
                rows.push(row);
            }
            parquet_file(&rows.iter().collect::<Vec<_>>())?
        }
    };
    if redacted > 0 {
        target.store.put(&path, PutPayload::from(body)).await?;
    }
    Ok(redacted)
}
