//! CI soak: 30 seconds of the soak program (`src/bin/soak.rs`) with 3 worker
//! processes on a persistent redis-server, against the faulty mock Anthropic
//! server: one worker killed every 10 s, Redis restarted once, a worker
//! connection cut every 5 s. Fails on any lost task, any finding stored
//! twice, any raw finding not adopted, or a ledger that differs from the
//! usage the mock served.
//!
//! The librarian part: the daemon with 4 shards against the mock Gemini,
//! asked an archive query every second. Shard 1's real limit is 1 a minute
//! (it is asked first on every 4th query, so it gets a second request in
//! one minute: a per-minute 429), shard 2's real daily limit is 3 (it is
//! asked first on every 4th query, so it gets a fourth: a per-day 429, and
//! that query is answered by another shard: a failover). Fails on any query
//! unanswered or failed for another reason than exhausted shards, on any
//! shard sent more than its configured limit, or on no failover. No timing
//! is asserted.

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
            "--ask-every-ms",
            "1000",
            "--gemini-rpm-low",
            "1",
            "--gemini-rpd-low",
            "3",
            "--gemini-503-rate",
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
    // The librarian: every query answered (or reported exhausted), no
    // shard sent more than the pool was configured for, and the per-day
    // 429 of shard 2 made at least one query fail over.
    let lib = &report["librarian"];
    assert!(n("librarian_queries_asked") > 0, "{report}");
    assert_eq!(n("librarian_queries_unanswered"), 0, "{report}");
    assert_eq!(n("librarian_queries_failed_other"), 0, "{report}");
    assert_eq!(
        n("librarian_queries_answered") + n("librarian_queries_exhausted"),
        n("librarian_queries_asked"),
        "{report}"
    );
    assert!(report["quota_never_over"].as_bool().unwrap(), "{lib}");
    assert!(lib["mock_per_day_429"].as_u64().unwrap() >= 1, "{lib}");
    assert!(n("librarian_queries_failed_over") >= 1, "{lib}");
    for s in lib["shards"].as_array().unwrap() {
        assert_eq!(s["requests_over_minute_limit"].as_u64(), Some(0), "{s}");
        assert!(
            s["busiest_day_received"].as_u64().unwrap() <= s["configured_rpd"].as_u64().unwrap(),
            "{s}"
        );
        // Every request the mock received was granted by the ledger first.
        assert!(
            s["ledger_granted_today"].as_u64().unwrap()
                >= s["mock_received_today"].as_u64().unwrap(),
            "{s}"
        );
    }
    // Redis memory was sampled over the run.
    assert!(
        report["redis_memory_samples"].as_array().unwrap().len() >= 2,
        "{report}"
    );
    assert!(report["ok"].as_bool().unwrap(), "{report}");
    assert!(out.status.success(), "exit {}: {stderr}", out.status);
}
