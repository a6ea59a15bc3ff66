//! `accounts`: what a sign-in costs, and that a wrong password and an unknown user cannot be told
//! apart by their timing (DESIGN §4a: "alike in body and in time").
//!
//! Accounts are registered through the gateway, then sign-ins are made one at a time, the three
//! kinds interleaved so that drift (a warm cache, another process) falls on all of them alike:
//! a wrong password for a known account, an unknown username, the right password. Each attempt
//! comes from its own forwarded address and no account fails more than the throttle allows, so
//! every attempt reaches the password check. Then a closed loop of right sign-ins from many
//! clients at once measures the throughput the bounded hasher allows.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::json;
use tokio::task::JoinSet;

use crate::Size;
use crate::report::{Latencies, Report, fmt, ms};
use crate::stack::Stack;

const PASSWORD: &str = "a benchmark password, long enough";

pub(crate) async fn run(size: Size) -> anyhow::Result<Report> {
    let samples: usize = size.pick(300, 12);
    let stack = Stack::start_with(&[("CHANSHARE_TRUSTED_PROXIES", "127.0.0.1")]).await?;
    let base = format!("http://{}", stack.gateway.addr());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    // Each account takes at most 5 wrong passwords (the throttle locks at 10).
    let accounts = samples.div_ceil(5);
    for n in 0..accounts {
        let body = json!({"username": format!("bench{n}"), "password": PASSWORD});
        let status = post(&http, &base, "/api/accounts", &body, "192.0.2.1").await?.0;
        if status != 201 {
            bail!("sign-up {n} answered {status}");
        }
    }

    let kinds = ["wrong password", "unknown user", "right password"];
    let mut latencies: [Latencies; 3] = Default::default();
    let mut bodies: [Option<String>; 3] = Default::default();
    for n in 0..samples {
        for (k, kind) in kinds.iter().enumerate() {
            let (username, password) = match k {
                0 => (format!("bench{}", n % accounts), "not the password at all"),
                1 => (format!("nobody{n}"), "not the password at all"),
                _ => (format!("bench{}", n % accounts), PASSWORD),
            };
            let from = format!("10.{}.{}.{}", k, n / 250, n % 250 + 1);
            let body = json!({"username": username, "password": password});
            let started = Instant::now();
            let (status, text) = post(&http, &base, "/api/sessions", &body, &from).await?;
            latencies[k].push(started.elapsed());
            let expected = if k == 2 { 200 } else { 401 };
            if status != expected {
                bail!("{kind} sign-in {n} answered {status}: {text}");
            }
            if k < 2 {
                bodies[k] = Some(text);
            }
        }
    }
    if bodies[0] != bodies[1] {
        bail!("a wrong password and an unknown user got different bodies: {bodies:?}");
    }

    let mut report = Report::new("accounts", &["sign-in", "n", "p50 ms", "p99 ms", "mean ms"]);
    let mut p50 = [0.0; 3];
    for (k, kind) in kinds.iter().enumerate() {
        let lat = &mut latencies[k];
        let mean = lat.mean();
        p50[k] = lat.quantile(0.5).as_secs_f64() * 1000.0;
        report.row(vec![
            (*kind).to_owned(),
            lat.len().to_string(),
            ms(lat.quantile(0.5)),
            ms(lat.quantile(0.99)),
            ms(mean),
        ]);
    }

    // Throughput: clients signing in back to back; the hasher runs a bounded number at once.
    let clients = size.pick(16, 4);
    let per_client = size.pick(10, 2);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        let (http, base) = (http.clone(), base.clone());
        tasks.spawn(async move {
            for _ in 0..per_client {
                let body =
                    json!({"username": format!("bench{}", c % accounts), "password": PASSWORD});
                let (status, _) = post(&http, &base, "/api/sessions", &body, "192.0.2.2").await?;
                if status != 200 {
                    bail!("closed-loop sign-in answered {status}");
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a sign-in client panicked")??;
    }
    let rate = (clients * per_client) as f64 / started.elapsed().as_secs_f64();
    report.row(vec![
        format!("closed loop, {clients} clients"),
        (clients * per_client).to_string(),
        "-".into(),
        "-".into(),
        format!("{} /s", fmt(rate)),
    ]);

    let gap = (p50[1] - p50[0]).abs() / p50[0].max(f64::EPSILON);
    report.note(format!(
        "p50 of an unknown user against a wrong password differs by {}% (the same Argon2id work \
         is done against a decoy hash; the bodies are byte-identical). Argon2id m=19 MiB, t=2, \
         p=1 (OWASP); the hasher runs half the cores' worth at once, on blocking threads.",
        fmt(gap * 100.0)
    ));
    report.at_most("unknown vs wrong password p50 gap (%)", gap * 100.0, "<= 10 %", 10.0);
    Ok(report)
}

/// `POST path` with `body` as client `from`: status and body.
async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: &serde_json::Value,
    from: &str,
) -> anyhow::Result<(u16, String)> {
    let response = http
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .header("x-forwarded-for", from)
        .body(body.to_string())
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}
