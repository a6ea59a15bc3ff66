//! The analyst archive: one row per event, Parquet or NDJSON, partitioned by day, incremental.
//!
//! Layout under the target (a directory or `s3://bucket/prefix`):
//! `date=YYYY-MM-DD/part-<first seq>-<last seq>.parquet` and `_checkpoint.json`
//! (`{"last_seq", "rows"}`). A run reads the log after the checkpoint and writes files named by
//! the stream sequences they cover, then moves the checkpoint: a run interrupted before the
//! checkpoint moved rewrites the same files with the same rows, so no row is ever duplicated.
//! Schema and example queries: `docs/archive.md`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use eventlog::{EventLog, Stored};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use serde::{Deserialize, Serialize};

/// Archive file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveFormat {
    /// Apache Parquet (Snappy).
    Parquet,
    /// Newline-delimited JSON.
    Ndjson,
}

/// Rows written per batch of files (bounded memory for any log size).
const BATCH_ROWS: usize = 100_000;

const SCHEMA: &str = "message chanshare_event {
  REQUIRED BYTE_ARRAY room_id (STRING);
  REQUIRED INT64 version;
  REQUIRED INT64 stream_seq;
  REQUIRED INT64 at (TIMESTAMP(MILLIS,true));
  REQUIRED BYTE_ARRAY actor (STRING);
  REQUIRED BYTE_ARRAY command_id (STRING);
  REQUIRED INT32 event_index;
  REQUIRED BYTE_ARRAY event_type (STRING);
  REQUIRED BYTE_ARRAY event (STRING);
}";

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub(crate) room_id: String,
    pub(crate) version: u64,
    pub(crate) stream_seq: u64,
    pub(crate) at: String,
    #[serde(skip)]
    pub(crate) at_ms: u64,
    pub(crate) actor: String,
    pub(crate) command_id: String,
    pub(crate) event_index: u32,
    pub(crate) event_type: String,
    pub(crate) event: serde_json::Value,
}

/// Chat messages deleted in the log, by room: their postings are exported as deleted.
pub(crate) type Deleted = std::collections::HashSet<(events::RoomId, events::MessageId)>;

/// Every chat deletion in the log from stream sequence `from_seq` (a deletion always follows
/// its posting, so these are all the deletions of messages this run exports).
async fn deletions(log: &EventLog, from_seq: u64) -> anyhow::Result<Deleted> {
    let mut deleted = Deleted::new();
    let mut commits = log.read_all(from_seq).await?;
    while let Some(stored) = commits.next().await {
        let Ok(stored) = stored else { continue };
        for event in &stored.commit.events {
            if let events::Event::ChatDeleted { message_id } = event {
                deleted.insert((stored.commit.room.clone(), message_id.clone()));
            }
        }
    }
    Ok(deleted)
}

fn rows<'a>(stored: &'a Stored, deleted: &'a Deleted) -> impl Iterator<Item = Row> + 'a {
    let commit = &stored.commit;
    let is_deleted = |id: &str| {
        events::MessageId::new(id).is_ok_and(|id| deleted.contains(&(commit.room.clone(), id)))
    };
    commit.events.iter().enumerate().map(move |(index, event)| Row {
        room_id: commit.room.to_string(),
        version: commit.version,
        stream_seq: stored.seq,
        at: crate::format_time(commit.at_ms),
        at_ms: commit.at_ms,
        actor: commit.actor.to_string(),
        command_id: commit.command_id.to_string(),
        event_index: index as u32,
        event_type: event.name().to_owned(),
        event: {
            let mut value = events::json::to_value(event).unwrap_or_default();
            events::json::redact_event(&mut value, &is_deleted);
            value
        },
    })
}

/// Where the archive goes.
#[derive(Debug)]
pub struct Target {
    pub(crate) store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl Target {
    /// A directory (created if missing) or `s3://bucket/prefix`.
    pub fn open(to: &str, s3_endpoint: Option<&str>) -> anyhow::Result<Target> {
        if let Some(rest) = to.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let store = storage::open(&format!("s3://{bucket}"), s3_endpoint)?;
            return Ok(Target { store, prefix: prefix.trim_matches('/').to_owned() });
        }
        let store = storage::open(&format!("file://{to}"), None)?;
        Ok(Target { store, prefix: String::new() })
    }

    pub(crate) fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    last_seq: u64,
    rows: u64,
}

/// What an export did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Commits exported in this run.
    pub commits: u64,
    /// Rows (events) written in this run.
    pub rows: u64,
    /// Files written in this run.
    pub files: u64,
    /// The stream sequence the archive now covers.
    pub last_seq: u64,
    /// Rows in the archive in all.
    pub total_rows: u64,
    /// Stream sequences (first, last) that left the log before any export took them: the
    /// archive has a hole there. Run exports more often than the stream's max age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<(u64, u64)>,
    /// Postings archived by an earlier run, deleted since, and redacted in their files now.
    pub redacted: u64,
    /// Such postings whose commit has left the log: their files could not be found.
    pub unredacted: u64,
}

/// Exports the commits after the checkpoint (only events at or after `since`, if given).
pub async fn export(
    log: &EventLog,
    target: &Target,
    format: ArchiveFormat,
    since: Option<u64>,
) -> anyhow::Result<Report> {
    let checkpoint_path = target.path("_checkpoint.json");
    let mut checkpoint: Checkpoint = match target.store.get(&checkpoint_path).await {
        Ok(found) => {
            serde_json::from_slice(&found.bytes().await?).context("unreadable _checkpoint.json")?
        }
        Err(object_store::Error::NotFound { .. }) => Checkpoint::default(),
        Err(error) => return Err(error).context("cannot read the checkpoint"),
    };
    let (first, last) = log.seq_range().await?;
    let expired = (first > checkpoint.last_seq + 1).then(|| (checkpoint.last_seq + 1, first - 1));
    let mut report = Report {
        last_seq: checkpoint.last_seq,
        total_rows: checkpoint.rows,
        expired,
        ..Report::default()
    };
    if last <= checkpoint.last_seq {
        return Ok(report);
    }
    let bar = crate::inspect::progress("exporting");
    bar.set_length(last - checkpoint.last_seq);
    let deleted = deletions(log, checkpoint.last_seq + 1).await?;
    // Messages archived by an earlier run and deleted since: their files are rewritten.
    let (redacted, unredacted) =
        crate::redact::earlier(log, target, format, &deleted, checkpoint.last_seq).await?;
    report.redacted = redacted;
    report.unredacted = unredacted;
    let mut commits = log.read_all(checkpoint.last_seq + 1).await?;
    let mut batch: Vec<Row> = Vec::new();
    let mut batch_last = checkpoint.last_seq;
    let mut interrupted = false;
    loop {
        let next = tokio::select! {
            _ = tokio::signal::ctrl_c() => { interrupted = true; None }
            next = commits.next() => next,
        };
        let Some(item) = next else { break };
        let stored = item
            .context("unreadable commit (see chanshare.deadletter); the export stops before it")?;
        bar.inc(1);
        report.commits += 1;
        batch_last = stored.seq;
        batch.extend(
            rows(&stored, &deleted).filter(|row| since.is_none_or(|since| row.at_ms >= since)),
        );
        if batch.len() >= BATCH_ROWS || stored.seq >= last {
            report.files +=
                write_batch(target, format, &batch, checkpoint.last_seq + 1, batch_last).await?;
            report.rows += batch.len() as u64;
            checkpoint.rows += batch.len() as u64;
            checkpoint.last_seq = batch_last;
            target
                .store
                .put(&checkpoint_path, PutPayload::from(serde_json::to_vec(&checkpoint)?))
                .await?;
            batch.clear();
        }
        if stored.seq >= last {
            break;
        }
    }
    bar.finish_and_clear();
    if interrupted && !batch.is_empty() {
        // Not checkpointed: the next run exports these commits again, into the same files.
        report.commits -= (batch_last - checkpoint.last_seq).min(report.commits);
    }
    report.last_seq = checkpoint.last_seq;
    report.total_rows = checkpoint.rows;
    Ok(report)
}

/// Writes one file per day for `rows` (which cover stream sequences `first..=last`).
async fn write_batch(
    target: &Target,
    format: ArchiveFormat,
    rows: &[Row],
    first: u64,
    last: u64,
) -> anyhow::Result<u64> {
    let mut days: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        days.entry(row.at[..10].to_owned()).or_default().push(row);
    }
    let extension = match format {
        ArchiveFormat::Parquet => "parquet",
        ArchiveFormat::Ndjson => "ndjson",
    };
    for (day, rows) in &days {
        let body = match format {
            ArchiveFormat::Parquet => parquet_file(rows)?,
            ArchiveFormat::Ndjson => {
                let mut body = Vec::new();
                for row in rows {
                    serde_json::to_writer(&mut body, row)?;
                    body.push(b'\n');
                }
                body
            }
        };
        let name = format!("date={day}/part-{first:012}-{last:012}.{extension}");
        target
            .store
            .put(&target.path(&name), PutPayload::from(body))
            .await
            .with_context(|| format!("cannot write {name}"))?;
    }
    Ok(days.len() as u64)
}

pub(crate) fn parquet_file(rows: &[&Row]) -> anyhow::Result<Vec<u8>> {
    let schema = Arc::new(parquet::schema::parser::parse_message_type(SCHEMA)?);
    let properties =
        Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, properties)?;
    let mut group = writer.next_row_group()?;
    let text = |f: fn(&Row) -> String| -> Vec<ByteArray> {
        rows.iter().map(|r| ByteArray::from(f(r).into_bytes())).collect()
    };
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        match index {
            0 => column.typed::<ByteArrayType>().write_batch(
                &text(|r| r.room_id.clone()),
                None,
                None,
            )?,
            1 => column.typed::<Int64Type>().write_batch(
                &rows.iter().map(|r| r.version as i64).collect::<Vec<_>>(),
                None,
                None,
            )?,
            2 => column.typed::<Int64Type>().write_batch(
                &rows.iter().map(|r| r.stream_seq as i64).collect::<Vec<_>>(),
                None,
                None,
            )?,
            3 => column.typed::<Int64Type>().write_batch(
                &rows.iter().map(|r| r.at_ms as i64).collect::<Vec<_>>(),
                None,
                None,
            )?,
            4 => column.typed::<ByteArrayType>().write_batch(
                &text(|r| r.actor.clone()),
                None,
                None,
            )?,
            5 => column.typed::<ByteArrayType>().write_batch(
                &text(|r| r.command_id.clone()),
                None,
                None,
            )?,
            6 => column.typed::<Int32Type>().write_batch(
                &rows.iter().map(|r| r.event_index as i32).collect::<Vec<_>>(),
                None,
                None,
            )?,
            7 => column.typed::<ByteArrayType>().write_batch(
                &text(|r| r.event_type.to_owned()),
                None,
                None,
            )?,
            _ => column.typed::<ByteArrayType>().write_batch(
                &text(|r| r.event.to_string()),
                None,
                None,
            )?,
        };
        column.close()?;
        index += 1;
    }
    group.close()?;
    Ok(writer.into_inner()?)
}
