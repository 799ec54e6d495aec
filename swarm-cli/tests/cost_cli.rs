//! `swarm cost …` run as the built binary: quotes with the issue's exact JSON
//! and exit status 3 for unpriced models; records written by one process and
//! reported by another through a real `redis-server` started here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};
use swarmbus_redis::testing::RedisServer;

fn swarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        // The tests choose the bus and the prices themselves.
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER")
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_PRICES")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run the swarm binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

const HAIKU_EXAMPLE: &[&str] = &[
    "cost",
    "quote",
    "--model",
    "claude-haiku-4-5-20251001",
    "--input-tokens",
    "1000",
    "--cache-read-tokens",
    "8000",
    "--cache-write-5m-tokens",
    "1000",
    "--output-tokens",
    "500",
];

#[test]
fn quote_json_is_exactly_the_issue_object() {
    let out = swarm(&[HAIKU_EXAMPLE, &["--json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // 1,000 × 1 + 8,000 × 0.10 + 1,000 × 1.25 + 500 × 5 = 5,550 per million → $0.00555
    assert_eq!(
        json_of(&out),
        json!({
            "model": "claude-haiku-4-5",
            "usd": "0.00555",
            "unpriced": false,
            "buckets": {
                "input": {"tokens": 1000, "usd_per_mtok": "1.00", "usd": "0.001"},
                "cache_read": {"tokens": 8000, "usd_per_mtok": "0.10", "usd": "0.0008"},
                "cache_write_5m": {"tokens": 1000, "usd_per_mtok": "1.25", "usd": "0.00125"},
                "cache_write_1h": {"tokens": 0, "usd_per_mtok": "2.00", "usd": "0.00"},
                "output": {"tokens": 500, "usd_per_mtok": "5.00", "usd": "0.0025"}
            }
        })
    );
    // Exactly one object on stdout.
    assert_eq!(stdout(&out).trim().lines().count(), 1);
}

#[test]
fn quote_text_shows_each_bucket_and_the_exact_total() {
    let out = swarm(HAIKU_EXAMPLE);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("claude-haiku-4-5 (standard billing"),
        "{text}"
    );
    assert!(text.contains("cache_write_5m"), "{text}");
    assert!(text.contains("total $0.00555"), "{text}");
}

#[test]
fn an_unknown_model_is_unpriced_with_exit_status_3() {
    let out = swarm(&[
        "cost",
        "quote",
        "--model",
        "gpt-imaginary",
        "--input-tokens",
        "10",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let v = json_of(&out);
    assert_eq!(v["model"], "gpt-imaginary");
    assert_eq!(v["unpriced"], true);
    assert_eq!(v["usd"], Value::Null);
    assert_eq!(v["buckets"]["input"]["tokens"], 10);
    assert_eq!(v["buckets"]["input"]["usd"], Value::Null);
    assert!(
        stderr(&out).contains("not in the price table"),
        "{}",
        stderr(&out)
    );

    // Without --json too.
    let out = swarm(&["cost", "quote", "--model", "gpt-imaginary"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("UNPRICED"), "{}", stderr(&out));
}

#[test]
fn batch_and_effective_dates_change_the_quote() {
    let out = swarm(&[HAIKU_EXAMPLE, &["--batch", "--json"]].concat());
    // Half of every rate: $0.002775
    assert_eq!(json_of(&out)["usd"], "0.002775");

    let deepseek = |at: &str| {
        swarm(&[
            "cost",
            "quote",
            "--model",
            "deepseek-chat",
            "--input-tokens",
            "1000",
            "--output-tokens",
            "500",
            "--at",
            at,
            "--json",
        ])
    };
    // 1,000 × 0.56 + 500 × 1.68 = 560 + 840 → $0.0014
    assert_eq!(json_of(&deepseek("2025-09-10"))["usd"], "0.0014");
    // 1,000 × 0.28 + 500 × 0.42 = 280 + 210 → $0.00049
    assert_eq!(json_of(&deepseek("2025-10-01"))["usd"], "0.00049");
    // Before the first row: unpriced.
    assert_eq!(deepseek("2025-01-01").status.code(), Some(3));
}

#[test]
fn a_price_file_adds_rows_to_the_built_in_table() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cost-cli-prices");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prices.toml");
    std::fs::write(
        &file,
        r#"
[[model]]
id = "house-model"
provider = "house"
effective = "2025-01-01"
source = "https://example.com/house-pricing"
standard = { input = "0.5", output = "1.5" }
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = swarm(&[
        "cost",
        "quote",
        "--model",
        "house-model",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "1000",
        "--prices",
        file,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // 1,000 × 0.5 + 1,000 × 1.5 = 2,000 → $0.002
    assert_eq!(json_of(&out)["usd"], "0.002");
    // The built-in rows are still there.
    let out = swarm(&[HAIKU_EXAMPLE, &["--prices", file, "--json"]].concat());
    assert_eq!(json_of(&out)["usd"], "0.00555");
    // A float price in the file is refused, naming the field.
    std::fs::write(dir.join("bad.toml"), "[[model]]\nid = \"x\"\nprovider = \"p\"\neffective = \"2025-01-01\"\nsource = \"https://e.com\"\nstandard = { input = 0.5, output = \"1\" }\n").unwrap();
    let bad = dir.join("bad.toml");
    let out = swarm(&[
        "cost",
        "quote",
        "--model",
        "x",
        "--prices",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("standard.input"), "{}", stderr(&out));
}

#[test]
fn prices_lists_every_row_with_its_source() {
    let out = swarm(&["cost", "prices"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("claude-sonnet-4-5 from 2025-09-29"), "{text}");
    assert!(text.contains("prompts above 200000 tokens"), "{text}");
    assert!(
        text.contains("source: https://ai.google.dev/gemini-api/docs/pricing"),
        "{text}"
    );
    let rows = json_of(&swarm(&["cost", "prices", "--json"]));
    for row in rows.as_array().unwrap() {
        assert!(
            row["source"].as_str().unwrap().starts_with("https://"),
            "{row}"
        );
        assert!(row["effective"].is_string(), "{row}");
    }
}

#[test]
fn report_on_an_empty_bus_prints_the_brief_lines() {
    let out = swarm(&["cost", "report"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "Cost This Session: Sonnet $0.0000 | Haiku $0.0000 | Gemini $0\nToken Efficiency: Haiku 0.0% / Sonnet 100.0%\n"
        ),
        "{text}"
    );
}

#[test]
fn calls_recorded_by_one_process_are_reported_by_another() {
    let redis = RedisServer::start();
    let url = redis.url();
    let record = |extra: &[&str]| {
        let out = swarm(&[&["--redis-url", url.as_str(), "cost", "record"][..], extra].concat());
        (out.status.code(), stdout(&out), stderr(&out))
    };
    // Two Haiku calls (the issue's example, $0.00555 each) by two workers.
    for w in ["haiku-1", "haiku-2"] {
        let (code, out, err) = record(&[
            "--tier",
            "haiku",
            "--model",
            "claude-haiku-4-5-20251001",
            "--worker",
            w,
            "--session",
            "instance-11",
            "--input-tokens",
            "1000",
            "--cache-read-tokens",
            "8000",
            "--cache-write-5m-tokens",
            "1000",
            "--output-tokens",
            "500",
        ]);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains("$0.00555"), "{out}");
    }
    // One Sonnet call: 1,000 × 3 + 100 × 15 → $0.0045.
    let (code, _, err) = record(&[
        "--tier",
        "sonnet",
        "--model",
        "claude-sonnet-4-5",
        "--session",
        "instance-11",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "100",
    ]);
    assert_eq!(code, Some(0), "{err}");
    // One librarian call on the free tier (its tier's billing): $0, shadow 1,000 × 0.30 → $0.0003.
    let (code, out, err) = record(&[
        "--tier",
        "gemini",
        "--model",
        "gemini-2.5-flash",
        "--session",
        "instance-11",
        "--input-tokens",
        "1000",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("free tier; list price $0.0003"), "{out}");
    // One call to a model nobody prices: recorded, unpriced, exit 3.
    let (code, out, _) = record(&[
        "--tier",
        "haiku",
        "--model",
        "mystery-model",
        "--session",
        "instance-11",
        "--input-tokens",
        "5",
    ]);
    assert_eq!(code, Some(3));
    assert!(out.contains("UNPRICED"), "{out}");

    let out = swarm(&["--redis-url", url.as_str(), "cost", "report"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "Cost This Session: Sonnet $0.0045 | Haiku $0.0111 (+1 unpriced) | Gemini $0\n"
        ),
        "{text}"
    );
    // Spend share: 0.0111 / (0.0111 + 0.0045) = 71.2 %.
    assert!(
        text.contains("Token Efficiency: Haiku 71.2% / Sonnet 28.8%"),
        "{text}"
    );
    assert!(
        text.contains("UNPRICED ×1: model \"mystery-model\""),
        "{text}"
    );

    let out = swarm(&[
        "--redis-url",
        url.as_str(),
        "cost",
        "report",
        "--session",
        "instance-11",
        "--json",
    ]);
    let report = json_of(&out);
    assert_eq!(report["total"]["calls"], 5);
    assert_eq!(report["total"]["unpriced_calls"], 1);
    assert_eq!(report["total"]["usd"], "0.0156");
    assert_eq!(report["total"]["shadow_usd"], "0.0003");
    assert_eq!(report["by_worker"]["haiku-1"]["usd"], "0.00555");
    assert_eq!(report["by_model"]["mystery-model"]["unpriced_calls"], 1);
    // 3 worker calls of 4 worker + coordinator calls.
    assert_eq!(report["worker_share"]["calls"], "75.0");
    assert_eq!(report["worker_share"]["on_target"], false);
    // On Sonnet each Haiku call costs 3,000 + 2,400 + 3,750 + 7,500 = $0.01665 and the
    // Gemini call 1,000 × 3 = $0.003: 2 × 0.01665 + 0.003 + 0.0045 = $0.0408 instead of $0.0156.
    assert_eq!(report["savings"]["on_coordinator_usd"], "0.0408");
    assert_eq!(report["savings"]["saved_usd"], "0.0252");

    // Another session has nothing.
    let out = swarm(&[
        "--redis-url",
        url.as_str(),
        "cost",
        "report",
        "--session",
        "instance-12",
        "--json",
    ]);
    assert_eq!(json_of(&out)["total"]["calls"], 0);
}

#[test]
fn record_reads_a_provider_usage_json() {
    let redis = RedisServer::start();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cost-cli-usage");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("anthropic.json");
    std::fs::write(
        &file,
        r#"{"usage": {"input_tokens": 1000, "cache_creation_input_tokens": 1000,
            "cache_read_input_tokens": 8000, "output_tokens": 500,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 0}}}"#,
    )
    .unwrap();
    let out = swarm(&[
        "--redis-url",
        &redis.url(),
        "cost",
        "record",
        "--tier",
        "haiku",
        "--model",
        "claude-haiku-4-5",
        "--provider",
        "anthropic",
        "--usage-json",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let entry = json_of(&out);
    assert_eq!(entry["usage"]["cache_write_5m_tokens"], 1000);
    assert_eq!(entry["cost"]["priced"]["usd"], "0.00555");
}

#[test]
fn racing_processes_cannot_overshoot_a_budget_on_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    // 20 processes each record the issue's Haiku call ($0.00555) against a
    // session budget that fits exactly 7 of them ($0.03885).
    let children: Vec<Child> = (0..20)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_swarm"))
                .args(["--redis-url", url.as_str(), "cost", "record"])
                .args(["--tier", "haiku", "--model", "claude-haiku-4-5"])
                .args(["--worker", &format!("haiku-{i}"), "--session", "race"])
                .args(["--input-tokens", "1000", "--cache-read-tokens", "8000"])
                .args(["--cache-write-5m-tokens", "1000", "--output-tokens", "500"])
                .args(["--session-budget", "0.03885"])
                .env_remove("SWARM_PRICES")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut codes = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        if out.status.code() == Some(4) {
            assert!(
                stderr(&out).contains("budget exhausted for session race"),
                "{}",
                stderr(&out)
            );
        }
        codes.push(out.status.code());
    }
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        7,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Some(4)).count(),
        13,
        "{codes:?}"
    );
    let report = json_of(&swarm(&[
        "--redis-url",
        url.as_str(),
        "cost",
        "report",
        "--json",
    ]));
    assert_eq!(report["total"]["calls"], 7);
    assert_eq!(report["total"]["usd"], "0.03885");
}
