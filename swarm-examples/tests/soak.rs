//! CI soak: 30 seconds of the soak program (`src/bin/soak.rs`) with 3 worker
//! processes on a persistent redis-server, against the faulty mock Anthropic
//! server: one worker killed every 10 s, Redis restarted once, a worker
//! connection cut every 5 s. Fails on any lost task, any finding stored
//! twice, any raw finding not adopted, or a ledger that differs from the
//! usage the mock served. No timing is asserted.

use std::process::Command;

#[test]
fn thirty_second_soak_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("soak.json");
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args([
            "--seconds",
            "30",
            "--workers",
            "3",
            "--tasks",
            "300",
            "--kill-every",
            "10",
            "--cut-every",
            "5",
            "--fault-rate",
            "0.05",
            "--report",
        ])
        .arg(&report_path)
        .env("TMPDIR", dir.path())
        .output()
        .expect("run the soak program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&report_path)
            .unwrap_or_else(|e| panic!("no report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}")),
    )
    .unwrap();
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing: {report}"))
    };
    assert_eq!(n("tasks_pushed"), 300, "{report}");
    assert_eq!(n("tasks_lost"), 0, "{report}");
    assert_eq!(
        n("tasks_completed") + n("tasks_failed_reported"),
        300,
        "{report}"
    );
    assert_eq!(n("tasks_completed_and_failed"), 0, "{report}");
    assert_eq!(n("findings_stored_twice"), 0, "{report}");
    assert_eq!(
        n("raw_findings_adopted"),
        n("raw_findings_written"),
        "{report}"
    );
    assert_eq!(n("ledger_tokens"), n("mock_usage_tokens"), "{report}");
    assert!(report["ledger_equal"].as_bool().unwrap(), "{report}");
    // The faults did happen.
    assert!(n("workers_killed") >= 2, "{report}");
    assert_eq!(n("redis_restarts"), 1, "{report}");
    assert!(report["ok"].as_bool().unwrap(), "{report}");
    assert!(out.status.success(), "exit {}: {stderr}", out.status);
}
