//! The benchmark harness runs every scenario at tiny sizes and reports each. Nothing here is
//! timed: the numbers belong to `./dev/bench`; what is checked is that each scenario ran against
//! its real servers and reported, and the outcomes that do not depend on speed.

use std::process::Command;

use serde_json::Value;

#[test]
fn every_scenario_runs_and_reports() {
    let chanshare = tests::chanshare::binary();
    let bench = chanshare.with_file_name("bench");
    assert!(
        bench.is_file(),
        "{} missing: `cargo build -p bench` (./dev/test does)",
        bench.display()
    );
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(&bench)
        .args(["run", "--quick", "--out"])
        .arg(out.path())
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = |scenario: &str| -> Value {
        let path = out.path().join(format!("{scenario}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{scenario}: {e}"));
        serde_json::from_str(&text).unwrap()
    };
    let scenarios = [
        "connections",
        "fanout",
        "commands",
        "join",
        "replay",
        "content",
        "abuse",
        "accounts",
        "dms",
        "sizing",
        "rewatch",
        "bigroom",
        "scale",
        "storm",
    ];
    for scenario in scenarios {
        let report = report(scenario);
        assert_eq!(report["scenario"], scenario);
        assert!(!report["rows"].as_array().unwrap().is_empty(), "{scenario}: no rows");
        // `sizing` measures what a room costs at rest: no target, numbers for operators.
        let untargeted = scenario == "sizing";
        assert!(
            untargeted || !report["targets"].as_array().unwrap().is_empty(),
            "{scenario}: no targets"
        );
        assert!(stdout.contains(&format!("## {scenario}")), "{scenario} not printed: {stdout}");
    }
    // Outcomes that are not about speed.
    let fanout = report("fanout");
    for row in fanout["rows"].as_array().unwrap() {
        let delivered = row["frames delivered"].as_str().unwrap();
        let (got, of) = delivered.split_once(" of ").unwrap();
        assert_eq!(got, of, "{}: not every commit reached every member", row["server"]);
    }
    // Every cost of a room at rest was measured (a stream or Redis that did not grow reads 0).
    for row in report("sizing")["rows"].as_array().unwrap() {
        let bytes: f64 = row["bytes each"].as_str().unwrap().replace(' ', "").parse().unwrap();
        assert!(bytes > 0.0, "sizing: {row}");
    }
    let measured = |scenario: &str, target: &str| -> Value {
        let report = report(scenario);
        let targets = report["targets"].as_array().unwrap();
        let found = targets.iter().find(|t| t["name"] == target);
        found.unwrap_or_else(|| panic!("{scenario}: no target {target:?}"))["measured"].clone()
    };
    let coalesced = measured("content", "upstream downloads for concurrent misses");
    assert_eq!(coalesced, 1.0, "concurrent misses downloaded more than once");
    // Under the flood, nothing of the honest clients' was refused.
    let abuse = report("abuse");
    for row in abuse["rows"].as_array().unwrap() {
        assert_eq!(row["honest refused"], "0", "{row}");
    }
    // A gateway died: every one of its clients came back, resumed, and no commit was missed
    // or received twice.
    let storm = &report("storm")["rows"][0];
    assert_eq!(storm["lost"], storm["on the killed gateway"], "{storm}");
    assert_eq!(storm["back"], storm["lost"], "{storm}");
    assert_eq!(storm["resumed"], storm["back"], "{storm}");
    for outcome in ["missed", "duplicates", "behind at the end"] {
        assert_eq!(storm[outcome], "0", "storm: {outcome}: {storm}");
    }
    // Over several gateways, every seek in the big room reached every member.
    let missing = measured("scale", "seek arrivals missing");
    assert_eq!(missing, 0.0, "a seek did not reach a member of the big room");
    let connections = &report("connections")["rows"][0];
    assert_eq!(connections["sockets"], "200", "every socket was opened and welcomed");
}
