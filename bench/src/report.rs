//! What a scenario reports: a table, its targets, and the same as JSON.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::Size;

/// One scenario's results.
#[derive(Debug)]
pub(crate) struct Report {
    scenario: &'static str,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    targets: Vec<Target>,
    notes: Vec<String>,
}

/// A target from DESIGN §9 and whether this run met it.
#[derive(Debug)]
pub(crate) struct Target {
    name: &'static str,
    measured: f64,
    goal: &'static str,
    met: bool,
}

impl Report {
    /// An empty report with the table's `header`.
    pub(crate) fn new(scenario: &'static str, header: &[&'static str]) -> Report {
        Report {
            scenario,
            header: header.to_vec(),
            rows: Vec::new(),
            targets: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a table row (as many cells as the header).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// Records a target: `measured` must be at least `floor`.
    pub(crate) fn at_least(
        &mut self,
        name: &'static str,
        measured: f64,
        goal: &'static str,
        floor: f64,
    ) {
        self.targets.push(Target { name, measured, goal, met: measured >= floor });
    }

    /// Records a target: `measured` must be at most `ceiling`.
    pub(crate) fn at_most(
        &mut self,
        name: &'static str,
        measured: f64,
        goal: &'static str,
        ceiling: f64,
    ) {
        self.targets.push(Target { name, measured, goal, met: measured <= ceiling });
    }

    /// Adds a line of context printed under the table.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// How many targets this run missed.
    pub(crate) fn missed(&self) -> usize {
        self.targets.iter().filter(|t| !t.met).count()
    }

    /// Prints the table, the notes and the targets.
    pub(crate) fn print(&self) {
        println!("\n## {}\n", self.scenario);
        let widths: Vec<usize> = (0..self.header.len())
            .map(|col| {
                self.rows
                    .iter()
                    .map(|row| row[col].len())
                    .chain([self.header[col].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> =
                cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:>width$}")).collect();
            println!("| {} |", padded.join(" | "));
        };
        line(self.header.clone());
        println!("|{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|"));
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
        for note in &self.notes {
            println!("\n{note}");
        }
        println!();
        for target in &self.targets {
            let verdict = if target.met { "met" } else { "MISSED" };
            println!(
                "target {}: {} (goal {}) {verdict}",
                target.name,
                fmt(target.measured),
                target.goal
            );
        }
    }

    /// Writes `<out>/<scenario>.json`.
    pub(crate) fn save(&self, out: &Path, size: Size) -> anyhow::Result<()> {
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                Value::Object(
                    self.header.iter().zip(row).map(|(h, c)| ((*h).to_owned(), json!(c))).collect(),
                )
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| json!({"name": t.name, "measured": t.measured, "goal": t.goal, "met": t.met}))
            .collect();
        let report = json!({
            "scenario": self.scenario,
            "quick": size.quick,
            "at_unix_s": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "machine": machine(),
            "rows": rows,
            "targets": targets,
            "notes": self.notes,
        });
        let path = out.join(format!("{}.json", self.scenario));
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))
    }
}

/// A number for people: no more digits than it deserves.
pub(crate) fn fmt(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Milliseconds with two decimals.
pub(crate) fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// What the numbers were measured on.
fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
        .map(str::trim)
        .unwrap_or("unknown");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo.lines().next().map(|l| l.trim_start_matches("MemTotal:").trim());
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu": model,
        "memory": mem_kib,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

/// Latencies of one run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies(Vec<Duration>);

impl Latencies {
    pub(crate) fn push(&mut self, latency: Duration) {
        self.0.push(latency);
    }

    pub(crate) fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The mean; zero when empty.
    pub(crate) fn mean(&self) -> Duration {
        let n = u32::try_from(self.0.len()).unwrap_or(u32::MAX).max(1);
        self.0.iter().sum::<Duration>() / n
    }

    /// The `q` quantile (0..=1); zero when empty.
    pub(crate) fn quantile(&mut self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let rank = ((self.0.len() - 1) as f64 * q).round() as usize;
        self.0[rank.min(self.0.len() - 1)]
    }
}
