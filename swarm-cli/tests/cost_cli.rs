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
        // The tests choose the bus and the prices themselves: a test that
        // forgets to must fail here, never reach a Redis on the default port.
        .env("REDIS_URL", "redis://127.0.0.1:1")
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
    let out = swarm(&["--memory", "cost", "report"]);
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
    // Savings are priced on the default coordinator model, now Claude Sonnet 5.5 (cache reads
    // $0.10 since 2026-10-07; updated from the old default, Sonnet 4.5): each Haiku call costs
    // 1,000 × 2 + 8,000 × 0.10 + 1,000 × 2.50 + 500 × 10 = 2,000 + 800 + 2,500 + 5,000 = $0.0103
    // on it and the Gemini call 1,000 × 2 = $0.002; with the Sonnet 4.5 call itself ($0.0045):
    // 2 × 0.0103 + 0.002 + 0.0045 = $0.0271 instead of $0.0156.
    assert_eq!(report["savings"]["on_coordinator_usd"], "0.0271");
    assert_eq!(report["savings"]["saved_usd"], "0.0115");

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

/// `swarm cost quote --json` of `model` at `at` with these tokens.
fn quote_at(model: &str, at: &str, tokens: &[(&str, u64)], extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["cost", "quote", "--model", model, "--at", at, "--json"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for (flag, n) in tokens {
        args.push(format!("--{flag}"));
        args.push(n.to_string());
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    swarm(&args)
}

/// 1,000 fresh input, 10,000 cache read, 2,000 5-minute and 1,000 1-hour cache writes,
/// 3,000 output: a 14,000-token prompt.
const ALL_BUCKETS: &[(&str, u64)] = &[
    ("input-tokens", 1_000),
    ("cache-read-tokens", 10_000),
    ("cache-write-5m-tokens", 2_000),
    ("cache-write-1h-tokens", 1_000),
    ("output-tokens", 3_000),
];

/// Token counts by flag name (`input-tokens`).
type Tokens = &'static [(&'static str, u64)];

/// No cache writes (Gemini and DeepSeek bill none per request).
const NO_WRITES: &[(&str, u64)] = &[
    ("input-tokens", 1_000),
    ("cache-read-tokens", 10_000),
    ("output-tokens", 3_000),
];

#[test]
fn quote_prices_every_current_model_exactly() {
    // (model, date, tokens, expected $): tokens × $/Mtok per bucket, summed by hand from
    // the rates in swarm-cost/data/prices.toml (the pages cited there). Written as
    // input + cache_read + cache_write_5m + cache_write_1h + output, in micro-dollars.
    let cases: &[(&str, &str, Tokens, &str)] = &[
        // 1,000 × 10 + 10,000 × 0.25 + 2,000 × 12.50 + 1,000 × 20 + 3,000 × 50
        // = 10,000 + 2,500 + 25,000 + 20,000 + 150,000 = 207,500
        ("claude-fable-5-1", "2026-11-29", ALL_BUCKETS, "0.2075"),
        // 4,000 + 2,000 + 10,000 + 8,000 + 60,000 = 84,000
        ("claude-opus-5-5", "2026-11-29", ALL_BUCKETS, "0.084"),
        // 5,000 + 5,000 + 12,500 + 10,000 + 75,000 = 107,500
        ("claude-opus-5", "2026-11-29", ALL_BUCKETS, "0.1075"),
        ("claude-opus-4-8", "2026-11-29", ALL_BUCKETS, "0.1075"),
        ("claude-opus-4-7", "2026-11-29", ALL_BUCKETS, "0.1075"),
        ("claude-opus-4-6", "2026-11-29", ALL_BUCKETS, "0.1075"),
        // 2,000 + 1,000 (cache reads at $0.10 since 2026-10-07) + 5,000 + 4,000 + 30,000
        ("claude-sonnet-5-5", "2026-11-29", ALL_BUCKETS, "0.042"),
        // 2,000 + 2,000 + 5,000 + 4,000 + 30,000 = 43,000
        ("claude-sonnet-5", "2026-11-29", ALL_BUCKETS, "0.043"),
        // 3,000 + 3,000 + 7,500 + 6,000 + 45,000 = 64,500
        ("claude-sonnet-4-6", "2026-11-29", ALL_BUCKETS, "0.0645"),
        // 100 + 100 + 250 + 200 + 1,500 = 2,150 (14,000-token prompt: the low band)
        ("claude-haiku-5-5", "2026-11-29", ALL_BUCKETS, "0.00215"),
        // 1,000 + 1,000 + 2,500 + 2,000 + 15,000 = 21,500
        ("claude-haiku-4-5", "2026-11-29", ALL_BUCKETS, "0.0215"),
        // 10,000 + 10,000 + 25,000 + 20,000 + 150,000 = 215,000
        ("claude-fable-5", "2026-11-29", ALL_BUCKETS, "0.215"),
        // Gemini: 1,000 × 0.75 + 10,000 × 0.075 + 3,000 × 3.75 = 750 + 750 + 11,250 = 12,750
        ("gemini-3.8-flash", "2026-11-29", NO_WRITES, "0.01275"),
        ("gemini-3.7-flash", "2026-11-29", NO_WRITES, "0.01275"),
        // 1,500 + 1,500 + 22,500 = 25,500
        ("gemini-3.6-flash", "2026-11-29", NO_WRITES, "0.0255"),
        // 300 + 300 + 7,500 = 8,100
        ("gemini-3.5-flash-lite", "2026-11-29", NO_WRITES, "0.0081"),
        // 250 + 250 + 4,500 = 5,000
        ("gemini-3.1-flash-lite", "2026-11-29", NO_WRITES, "0.005"),
        // DeepSeek at peak rates: 1,000 × 0.30 + 10,000 × 0.006 + 3,000 × 1.20 = 300 + 60 + 3,600
        ("deepseek-flash", "2026-11-29", NO_WRITES, "0.00396"),
        // The legacy name is billed as Flash.
        ("deepseek-v4-flash", "2026-11-29", NO_WRITES, "0.00396"),
        // Before V4.1 (2026-09-10 04:00 UTC): 1,000 × 0.44 + 10,000 × 0.014 + 3,000 × 1.32
        // = 440 + 140 + 3,960 = 4,540
        ("deepseek-v4-flash", "2026-09-01", NO_WRITES, "0.00454"),
        // 1,320 + 440 + 11,880 = 13,640
        ("deepseek-v4-pro", "2026-11-29", NO_WRITES, "0.01364"),
    ];
    for (model, at, tokens, expected) in cases {
        let out = quote_at(model, at, tokens, &[]);
        assert_eq!(out.status.code(), Some(0), "{model}: {}", stderr(&out));
        let quote = json_of(&out);
        assert_eq!(quote["usd"], *expected, "{model} at {at}: {quote}");
        assert_eq!(quote["unpriced"], false);
    }
    // Gemini 3.5 Flash: no published cache-read price, so a call with cache reads is
    // unpriced, never $0; without them: 1,000 × 1.50 + 3,000 × 9 = 28,500.
    let out = quote_at("gemini-3.5-flash", "2026-11-29", NO_WRITES, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("cache_read"), "{}", stderr(&out));
    let out = quote_at(
        "gemini-3.5-flash",
        "2026-11-29",
        &[("input-tokens", 1_000), ("output-tokens", 3_000)],
        &[],
    );
    assert_eq!(json_of(&out)["usd"], "0.0285");
    // Gemini 3.8 Flash's launch price ends with 2026: 1,000 × 1.50 + 3,000 × 7.50 = 24,000.
    let out = quote_at(
        "gemini-3.8-flash",
        "2027-01-01",
        &[("input-tokens", 1_000), ("output-tokens", 3_000)],
        &[],
    );
    assert_eq!(json_of(&out)["usd"], "0.024");
}

#[test]
fn haiku_5_5_pays_the_higher_band_on_every_token_above_100000_prompt_tokens() {
    // Exactly 100,000 prompt tokens (90,000 fresh + 10,000 cache read): the low band.
    // 90,000 × 0.10 + 10,000 × 0.01 + 1,000 × 0.50 = 9,000 + 100 + 500 = 9,600.
    let low = json_of(&quote_at(
        "claude-haiku-5-5",
        "2026-11-29",
        &[
            ("input-tokens", 90_000),
            ("cache-read-tokens", 10_000),
            ("output-tokens", 1_000),
        ],
        &[],
    ));
    assert_eq!(low["usd"], "0.0096");
    assert_eq!(low["buckets"]["output"]["usd_per_mtok"], "0.50");
    // 100,001: every token, output included, at the higher band.
    // 90,001 × 0.50 + 10,000 × 0.05 + 1,000 × 2.50 = 45,000.5 + 500 + 2,500 = 48,000.5.
    let high = json_of(&quote_at(
        "claude-haiku-5-5",
        "2026-11-29",
        &[
            ("input-tokens", 90_001),
            ("cache-read-tokens", 10_000),
            ("output-tokens", 1_000),
        ],
        &[],
    ));
    assert_eq!(high["usd"], "0.0480005");
    assert_eq!(high["buckets"]["input"]["usd_per_mtok"], "0.50");
    assert_eq!(high["buckets"]["cache_read"]["usd_per_mtok"], "0.05");
    assert_eq!(high["buckets"]["output"]["usd_per_mtok"], "2.50");
    // Cache writes count towards the prompt: 80,000 fresh + 20,001 written (5 min).
    // 80,000 × 0.50 + 20,001 × 0.625 = 40,000 + 12,500.625 = 52,500.625.
    let writes = json_of(&quote_at(
        "claude-haiku-5-5",
        "2026-11-29",
        &[("input-tokens", 80_000), ("cache-write-5m-tokens", 20_001)],
        &[],
    ));
    assert_eq!(writes["usd"], "0.052500625");
    // And batch halves the higher band: 100,001 × 0.25 = 25,000.25.
    let batch = json_of(&quote_at(
        "claude-haiku-5-5",
        "2026-11-29",
        &[("input-tokens", 100_001)],
        &["--batch"],
    ));
    assert_eq!(batch["usd"], "0.02500025");
    // The text quote names the band.
    let out = swarm(&[
        "cost",
        "quote",
        "--model",
        "claude-haiku-5-5",
        "--at",
        "2026-11-29",
        "--input-tokens",
        "100001",
    ]);
    assert!(
        stdout(&out).contains("long-context rates"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn sonnet_5_5_cache_reads_cost_half_from_2026_10_07() {
    let reads = &[("cache-read-tokens", 1_000_000), ("output-tokens", 0)];
    // 1,000,000 × 0.20 before the cut, × 0.10 from it (00:00 UTC).
    let before = json_of(&quote_at(
        "claude-sonnet-5-5",
        "2026-10-06T23:59:59Z",
        reads,
        &[],
    ));
    assert_eq!(before["usd"], "0.20");
    assert_eq!(before["buckets"]["cache_read"]["usd_per_mtok"], "0.20");
    let after = json_of(&quote_at("claude-sonnet-5-5", "2026-10-07", reads, &[]));
    assert_eq!(after["usd"], "0.10");
    assert_eq!(after["buckets"]["cache_read"]["usd_per_mtok"], "0.10");
    // Before its release it has no price at all.
    assert_eq!(
        quote_at("claude-sonnet-5-5", "2026-09-01", reads, &[])
            .status
            .code(),
        Some(3)
    );
}

#[test]
fn a_retired_model_is_still_quoted_and_marked_retired_with_its_replacement() {
    let tokens = &[("input-tokens", 1_000), ("output-tokens", 100)];
    // Claude Sonnet 4.5 after 2026-11-30: 1,000 × 3 + 100 × 15 = $0.0045, retired.
    let out = quote_at("claude-sonnet-4-5-20250929", "2026-12-01", tokens, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let quote = json_of(&out);
    assert_eq!(quote["usd"], "0.0045");
    assert_eq!(quote["lifecycle"]["status"], "retired");
    assert_eq!(quote["lifecycle"]["retired_on"], "2026-11-30");
    assert_eq!(quote["lifecycle"]["replacement"], "claude-sonnet-5-5");
    assert!(
        stderr(&out).contains("RETIRED: claude-sonnet-4-5-20250929 was retired on 2026-11-30"),
        "{}",
        stderr(&out)
    );
    // The day before, it is deprecated: a warning, same price.
    let quote = json_of(&quote_at("claude-sonnet-4-5", "2026-11-29", tokens, &[]));
    assert_eq!(quote["lifecycle"]["status"], "deprecated");
    assert_eq!(quote["lifecycle"]["retires_on"], "2026-11-30");
    // Gemini 2.5 Flash after its shutdown names Gemini 3.5 Flash-Lite.
    let quote = json_of(&quote_at("gemini-2.5-flash", "2026-12-02", tokens, &[]));
    assert_eq!(quote["lifecycle"]["status"], "retired");
    assert_eq!(quote["lifecycle"]["replacement"], "gemini-3.5-flash-lite");
    // The text quote says it too.
    let out = swarm(&[
        "cost",
        "quote",
        "--model",
        "gemini-2.0-flash",
        "--at",
        "2026-12-02",
        "--input-tokens",
        "1000",
    ]);
    assert!(
        stdout(&out).contains("RETIRED: gemini-2.0-flash was retired on 2026-06-01")
            && stdout(&out).contains("use gemini-3.5-flash-lite"),
        "{}",
        stdout(&out)
    );
    // An active model's quote has no lifecycle key.
    let quote = json_of(&quote_at("claude-sonnet-5-5", "2026-12-01", tokens, &[]));
    assert!(quote.get("lifecycle").is_none(), "{quote}");
}

fn litellm_sample() -> String {
    format!(
        "{}/../swarm-cost/tests/fixtures/litellm/model_prices_sample.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn a_litellm_import_loads_with_prices_and_quotes_the_input_prices() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cost-cli-import");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("litellm.toml");
    let _ = std::fs::remove_file(&file);
    let out = swarm(&[
        "cost",
        "prices",
        "import",
        "--litellm",
        &litellm_sample(),
        "--out",
        file.to_str().unwrap(),
        "--effective",
        "2026-12-01",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = json_of(&out);
    assert_eq!(summary["rows"], 5);
    let unmapped = summary["unmapped"].as_array().unwrap();
    assert_eq!(unmapped.len(), 7, "{summary}");
    assert!(
        unmapped
            .iter()
            .any(|u| u["key"] == "dall-e-3" && u["reason"].as_str().unwrap().contains("mode"))
    );
    // The same list on stderr.
    assert!(
        stderr(&out)
            .contains("not mapped: bedrock/us-east-1/anthropic.claude-haiku-5-5: provider bedrock"),
        "{}",
        stderr(&out)
    );
    let prices = file.to_str().unwrap();
    // Haiku 5.5 from the imported file: 2,150 micro-dollars, as the JSON's prices say.
    let quote = quote_at(
        "claude-haiku-5-5",
        "2026-12-02",
        ALL_BUCKETS,
        &["--prices", prices],
    );
    assert_eq!(json_of(&quote)["usd"], "0.00215");
    // Both bands came through: 100,001 × 0.50.
    let quote = quote_at(
        "claude-haiku-5-5",
        "2026-12-02",
        &[("input-tokens", 100_001)],
        &["--prices", prices],
    );
    assert_eq!(json_of(&quote)["usd"], "0.0500005");
    // The text quote shows the imported row's date and source.
    let out = swarm(&[
        "cost",
        "quote",
        "--model",
        "deepseek-flash",
        "--at",
        "2026-12-02",
        "--input-tokens",
        "1000",
        "--cache-read-tokens",
        "10000",
        "--output-tokens",
        "3000",
        "--prices",
        prices,
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("in force from 2026-12-01 00:00 UTC"),
        "{text}"
    );
    assert!(text.contains("BerriAI/litellm"), "{text}");
    assert!(text.contains("total $0.00396"), "{text}");
}

#[test]
fn a_malformed_litellm_file_is_an_error_and_writes_nothing() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cost-cli-import-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("broken.json");
    std::fs::write(
        &input,
        "{\"claude-haiku-5-5\": {\"input_cost_per_token\": 1e-07,",
    )
    .unwrap();
    let file = dir.join("out.toml");
    let _ = std::fs::remove_file(&file);
    let out = swarm(&[
        "cost",
        "prices",
        "import",
        "--litellm",
        input.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
    assert!(!file.exists());
    assert!(
        std::fs::read_dir(&dir).unwrap().count() == 1,
        "only the input is left in the directory"
    );
    // A missing input file too.
    let out = swarm(&[
        "cost",
        "prices",
        "import",
        "--litellm",
        dir.join("missing.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
}
