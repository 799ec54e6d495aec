//! The shard pool's failover, against a real local HTTP server and the
//! in-memory quota ledger, with a manual clock (no test waits for real).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{MODEL, fixture, success_body, unary_path};
use secrecy::SecretString;
use swarmbus_core::ShardStatus;
use swarmbus_core::bus::QuotaLedger;
use swarmbus_core::keys::ShardId;
use swarmbus_core::llm::{CompletionRequest, LanguageModel};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_gemini::wire::GenerateContentRequest;
use swarmbus_gemini::{
    ClientConfig, Error, ErrorKind, FallbackConfig, ManualClock, OpenAiCompatible, PoolConfig,
    ServedBy, ShardConfig, ShardPool,
};
use swarmbus_memory::MemoryBus;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn key(n: u32) -> String {
    format!("test-shard-key-{n}-DO-NOT-LEAK")
}

fn sid(n: u32) -> ShardId {
    ShardId::new(n).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Rig {
    server: MockServer,
    bus: Arc<MemoryBus>,
    clock: Arc<ManualClock>,
}

impl Rig {
    async fn new(start: &str) -> Self {
        Self {
            server: MockServer::start().await,
            bus: Arc::new(MemoryBus::new()),
            clock: Arc::new(ManualClock::new(utc(start))),
        }
    }

    fn pool(&self, shards: u32, limits: QuotaLimits) -> ShardPool<MemoryBus> {
        let configs = (1..=shards)
            .map(|n| ShardConfig::new(sid(n), SecretString::from(key(n))).with_limits(limits))
            .collect();
        let config = PoolConfig::default()
            .model(MODEL)
            .client(ClientConfig::default().base_url(self.server.uri()))
            .backoff(Duration::from_millis(100), Duration::from_secs(2))
            .max_wait(Duration::from_secs(0));
        ShardPool::new(configs, self.bus.clone(), config)
            .unwrap()
            .with_clock(self.clock.clone())
    }

    fn pool_with_projects(&self, projects: &[&str]) -> ShardPool<MemoryBus> {
        let configs = projects
            .iter()
            .zip(1..)
            .map(|(p, n)| {
                ShardConfig::new(sid(n), SecretString::from(key(n)))
                    .with_project(*p)
                    .with_limits(QuotaLimits::free_tier())
            })
            .collect();
        let config = PoolConfig::default()
            .model(MODEL)
            .client(ClientConfig::default().base_url(self.server.uri()))
            .max_wait(Duration::from_secs(0));
        ShardPool::new(configs, self.bus.clone(), config)
            .unwrap()
            .with_clock(self.clock.clone())
    }

    fn fallback(&self) -> OpenAiCompatible {
        OpenAiCompatible::new(
            SecretString::from("test-fallback-key-DO-NOT-LEAK".to_owned()),
            FallbackConfig::default().base_url(self.server.uri()),
        )
        .unwrap()
    }

    /// Shard `n` answers with `status` and `body`, `times` times (or always).
    async fn shard_answers(&self, n: u32, status: u16, body: Vec<u8>, times: Option<u64>) {
        let mut mock = Mock::given(method("POST"))
            .and(path(unary_path(MODEL)))
            .and(header("x-goog-api-key", key(n).as_str()))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"));
        if let Some(t) = times {
            mock = mock.up_to_n_times(t);
        }
        mock.mount(&self.server).await;
    }

    async fn requests_to(&self, n: u32) -> usize {
        let k = key(n);
        self.server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| {
                r.headers
                    .get("x-goog-api-key")
                    .is_some_and(|v| v.as_bytes() == k.as_bytes())
            })
            .count()
    }

    async fn state(&self, n: u32) -> swarmbus_core::ShardState {
        self.bus
            .shard_states(&[sid(n)], QuotaLimits::free_tier(), self.clock.now())
            .await
            .unwrap()
            .remove(0)
    }
}

use swarmbus_gemini::Clock;

fn ask() -> GenerateContentRequest {
    GenerateContentRequest::user("What did session 10 find about cost?")
}

#[tokio::test]
async fn a_per_minute_429_cools_shard_1_and_shard_2_answers() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        429,
        fixture("transcribed/error-429-per-minute-free-tier.json"),
        Some(1),
    )
    .await;
    rig.shard_answers(1, 200, success_body("from shard 1"), None)
        .await;
    rig.shard_answers(2, 200, success_body("from shard 2"), None)
        .await;
    let pool = rig.pool(2, QuotaLimits::free_tier());

    let a = pool.generate(&ask()).await.unwrap();
    assert_eq!(a.served_by, ServedBy::Shard(sid(2)));
    assert_eq!(a.completion.text(), "from shard 2");
    assert_eq!(a.failovers, 1, "shard 1's 429 moved the call to shard 2");
    let s1 = rig.state(1).await;
    assert_eq!(s1.status, ShardStatus::Cooling);
    assert_eq!(s1.cooling_until, Some(utc("2026-01-15T20:00:58Z")));
    // The 429's quotaValue taught the shard its per-minute limit.
    assert_eq!(pool.limits(sid(1)).unwrap().per_minute, Some(5));

    // While cooling, shard 1 is skipped without a request (whichever shard
    // the round-robin starts at).
    let mut moved = Vec::new();
    for _ in 0..2 {
        let b = pool.generate(&ask()).await.unwrap();
        assert_eq!(b.served_by, ServedBy::Shard(sid(2)));
        moved.push(b.failovers);
    }
    assert_eq!(rig.requests_to(1).await, 1);
    // One call started at shard 2 (no failover), the other at the cooling
    // shard 1 (one); the pool counts all three calls' moves.
    moved.sort_unstable();
    assert_eq!(moved, vec![0, 1]);
    assert_eq!(pool.failovers(), 2);

    // After the delay the same shard is used again.
    rig.clock.advance(Duration::from_secs(58));
    let mut served = Vec::new();
    for _ in 0..2 {
        served.push(pool.generate(&ask()).await.unwrap().served_by);
    }
    assert!(served.contains(&ServedBy::Shard(sid(1))), "{served:?}");
    assert_eq!(rig.state(1).await.status, ShardStatus::Ok);
}

async fn per_day_exhaustion_at(now: &str, midnight: &str) {
    let rig = Rig::new(now).await;
    rig.shard_answers(
        1,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
        Some(1),
    )
    .await;
    rig.shard_answers(1, 200, success_body("shard 1 again"), None)
        .await;
    rig.shard_answers(2, 200, success_body("from shard 2"), None)
        .await;
    let pool = rig.pool(2, QuotaLimits::free_tier());

    let a = pool.generate(&ask()).await.unwrap();
    assert_eq!(a.served_by, ServedBy::Shard(sid(2)));
    let s1 = rig.state(1).await;
    assert_eq!(s1.status, ShardStatus::Exhausted, "at {now}");
    assert_eq!(s1.exhausted_until, Some(utc(midnight)), "at {now}");
    assert_eq!(s1.remaining_today, Some(0));
    // The ledger's raw `librarian:shard1:quota` value says 0.
    assert_eq!(
        rig.bus.shard_quotas(&[sid(1)]).await.unwrap(),
        vec![Some(0)]
    );
    // quotaValue 250 is the real daily limit, learnt.
    assert_eq!(pool.limits(sid(1)).unwrap().per_day, Some(250));

    // One second before the reset: still exhausted.
    rig.clock.set(utc(midnight) - chrono::Duration::seconds(1));
    pool.generate(&ask()).await.unwrap();
    pool.generate(&ask()).await.unwrap();
    assert_eq!(rig.requests_to(1).await, 1);
    // At the reset: usable again.
    rig.clock.set(utc(midnight));
    let mut served = Vec::new();
    for _ in 0..2 {
        served.push(pool.generate(&ask()).await.unwrap().served_by);
    }
    assert!(served.contains(&ServedBy::Shard(sid(1))), "{served:?}");
}

#[tokio::test]
async fn a_per_day_429_exhausts_until_the_pacific_midnight_in_winter() {
    // 12:00 PST; the 429's RetryInfo says 22 s, the reset is midnight.
    per_day_exhaustion_at("2026-01-15T20:00:00Z", "2026-01-16T08:00:00Z").await;
}

#[tokio::test]
async fn a_per_day_429_on_the_day_clocks_spring_forward_resets_at_pdt_midnight() {
    // 2026-03-08 03:00 PDT (an hour after the change): the next midnight is
    // 07:00 UTC, not 08:00.
    per_day_exhaustion_at("2026-03-08T10:00:00Z", "2026-03-09T07:00:00Z").await;
}

#[tokio::test]
async fn a_per_day_429_the_evening_before_spring_forward_resets_at_pst_midnight() {
    // 2026-03-07 16:00 PST: the reset is the coming midnight, still PST.
    per_day_exhaustion_at("2026-03-08T00:00:00Z", "2026-03-08T08:00:00Z").await;
}

#[tokio::test]
async fn a_per_day_429_on_the_day_clocks_fall_back_resets_at_pst_midnight() {
    // 2026-11-01 05:00 PST (after the change): the next midnight is 08:00 UTC.
    per_day_exhaustion_at("2026-11-01T13:00:00Z", "2026-11-02T08:00:00Z").await;
}

#[tokio::test]
async fn a_quota_hit_on_one_key_exhausts_every_key_of_its_project() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
        None,
    )
    .await;
    rig.shard_answers(2, 200, success_body("same project"), None)
        .await;
    rig.shard_answers(3, 200, success_body("other project"), None)
        .await;
    let pool = rig.pool_with_projects(&["project-a", "project-a", "project-b"]);
    let a = pool.generate(&ask()).await.unwrap();
    assert_eq!(a.completion.text(), "other project");
    assert_eq!(rig.state(2).await.status, ShardStatus::Exhausted);
    assert_eq!(rig.state(3).await.status, ShardStatus::Ok);
    for _ in 0..3 {
        assert_eq!(
            pool.generate(&ask()).await.unwrap().served_by,
            ServedBy::Shard(sid(3))
        );
    }
    assert_eq!(rig.requests_to(2).await, 0);
}

#[tokio::test]
async fn an_invalid_key_disables_the_shard_and_it_is_never_retried() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(1, 400, fixture("googleai/unary-failure-api-key.json"), None)
        .await;
    rig.shard_answers(2, 200, success_body("from shard 2"), None)
        .await;
    let pool = rig.pool(2, QuotaLimits::free_tier());
    for _ in 0..4 {
        let a = pool.generate(&ask()).await.unwrap();
        assert_eq!(a.served_by, ServedBy::Shard(sid(2)));
    }
    assert_eq!(rig.requests_to(1).await, 1);
    let s1 = rig.state(1).await;
    assert_eq!(s1.status, ShardStatus::Disabled);
    assert!(s1.disabled_reason.unwrap().starts_with("invalid_key"));
    // Still disabled a day later: only a person enables it.
    rig.clock.advance(Duration::from_secs(86_400));
    pool.generate(&ask()).await.unwrap();
    assert_eq!(rig.requests_to(1).await, 1);
}

#[tokio::test]
async fn a_bad_request_is_not_rotated() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        400,
        fixture("transcribed/error-400-invalid-argument-bad-request.json"),
        None,
    )
    .await;
    rig.shard_answers(2, 200, success_body("from shard 2"), None)
        .await;
    let pool = rig.pool(2, QuotaLimits::free_tier());
    let e = pool.generate(&ask()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(rig.requests_to(1).await, 1);
    assert_eq!(rig.requests_to(2).await, 0);
    // The shard itself is fine.
    assert_eq!(rig.state(1).await.status, ShardStatus::Ok);
}

#[tokio::test]
async fn a_server_error_is_retried_with_backoff_on_the_same_shard() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        503,
        fixture("transcribed/error-503-unavailable-overloaded.json"),
        Some(2),
    )
    .await;
    rig.shard_answers(1, 200, success_body("third time"), None)
        .await;
    rig.shard_answers(2, 200, success_body("from shard 2"), None)
        .await;
    let pool = rig.pool(2, QuotaLimits::free_tier());
    let a = pool.generate(&ask()).await.unwrap();
    assert_eq!(a.served_by, ServedBy::Shard(sid(1)));
    assert_eq!(a.completion.text(), "third time");
    assert_eq!(rig.requests_to(1).await, 3);
    let sleeps = rig.clock.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    // Jittered within [d/2, d] of max(exponential, the error's 1 s floor).
    for s in &sleeps {
        assert!(
            *s >= Duration::from_millis(500) && *s <= Duration::from_secs(1),
            "{s:?}"
        );
    }
    // Three requests counted against the day.
    assert_eq!(rig.state(1).await.used_today, 3);
}

#[tokio::test]
async fn server_errors_everywhere_fail_over_then_report_the_server_error() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(1, 500, fixture("transcribed/error-500-internal.json"), None)
        .await;
    rig.shard_answers(2, 500, fixture("transcribed/error-500-internal.json"), None)
        .await;
    let pool = rig.pool(2, QuotaLimits::free_tier());
    let e = pool.generate(&ask()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServerError);
    assert_eq!(rig.requests_to(1).await, 3);
    assert_eq!(rig.requests_to(2).await, 3);
}

#[tokio::test]
async fn when_every_shard_cools_the_pool_waits_for_the_earliest_within_the_deadline() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        429,
        fixture("transcribed/error-429-per-minute-free-tier.json"),
        None,
    )
    .await;
    let bare = fixture("transcribed/error-429-bare-no-details.json");
    // Shard 2: a bare 429 (60 s) once, then answers.
    rig.shard_answers(2, 429, bare, Some(1)).await;
    rig.shard_answers(2, 200, success_body("after the wait"), None)
        .await;
    let pool = rig.pool(2, QuotaLimits::free_tier());
    let a = pool
        .generate_within(&ask(), Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(a.completion.text(), "after the wait");
    // It waited 58 s for shard 1 (the earliest), which was rate limited
    // again, then 2 s more for shard 2's 60 s to end.
    assert_eq!(
        rig.clock.sleeps(),
        vec![Duration::from_secs(58), Duration::from_secs(2)]
    );
    assert_eq!(rig.clock.now(), utc("2026-01-15T20:01:00Z"));
    assert_eq!(rig.requests_to(2).await, 2);
}

#[tokio::test]
async fn a_cooling_shard_beyond_the_deadline_is_reported_not_waited_for() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        429,
        fixture("transcribed/error-429-per-minute-free-tier.json"),
        None,
    )
    .await;
    let pool = rig.pool(1, QuotaLimits::free_tier());
    let e = pool
        .generate_within(&ask(), Duration::from_secs(10))
        .await
        .unwrap_err();
    match &e {
        Error::AllShardsExhausted {
            shards,
            next_usable,
            ..
        } => {
            assert_eq!(shards[0].status, ShardStatus::Cooling);
            assert_eq!(*next_usable, Some(utc("2026-01-15T20:00:58Z")));
        }
        other => panic!("{other:?}"),
    }
    assert!(rig.clock.sleeps().is_empty());
}

#[tokio::test]
async fn all_shards_exhausted_goes_to_the_fallback_provider() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    let day = fixture("transcribed/error-429-per-day-free-tier.json");
    rig.shard_answers(1, 429, day.clone(), None).await;
    rig.shard_answers(2, 429, day, None).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header("authorization", "Bearer test-fallback-key-DO-NOT-LEAK"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"id":"x","model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"from the fallback"},"finish_reason":"stop"}],
               "usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16,"prompt_cache_hit_tokens":8,"prompt_cache_miss_tokens":4}}"#,
            "application/json",
        ))
        .mount(&rig.server)
        .await;
    let pool = rig
        .pool(2, QuotaLimits::free_tier())
        .with_fallback(rig.fallback());
    let a = pool.generate(&ask().system("be brief")).await.unwrap();
    assert_eq!(a.served_by, ServedBy::Fallback("deepseek".into()));
    assert_eq!(a.completion.text(), "from the fallback");
    assert_eq!(a.failovers, 2, "shard 1 → shard 2 → the fallback");
    assert_eq!(a.completion.usage.input_tokens, 4);
    assert_eq!(a.completion.usage.cache_read_tokens, 8);
    let fb = rig
        .server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/chat/completions")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&fb.body).unwrap();
    assert_eq!(body["model"], "deepseek-chat");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(
        body["messages"][1]["content"],
        "What did session 10 find about cost?"
    );
    // Once the shards are known exhausted, the fallback answers without
    // another shard request.
    pool.generate(&ask()).await.unwrap();
    assert_eq!(rig.requests_to(1).await + rig.requests_to(2).await, 2);
}

#[tokio::test]
async fn the_fallback_is_not_used_while_a_shard_can_serve() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(1, 200, success_body("shard"), None).await;
    let pool = rig
        .pool(1, QuotaLimits::free_tier())
        .with_fallback(rig.fallback());
    let a = pool.generate(&ask()).await.unwrap();
    assert_eq!(a.served_by, ServedBy::Shard(sid(1)));
    assert_eq!((a.failovers, pool.failovers()), (0, 0));
    let to_fallback = rig
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/chat/completions")
        .count();
    assert_eq!(to_fallback, 0);
}

#[tokio::test]
async fn a_fallback_out_of_balance_counts_as_exhausted() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
        None,
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(402).set_body_raw(
            r#"{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}"#,
            "application/json",
        ))
        .mount(&rig.server)
        .await;
    let pool = rig
        .pool(1, QuotaLimits::free_tier())
        .with_fallback(rig.fallback());
    let e = pool.generate(&ask()).await.unwrap_err();
    match &e {
        Error::AllShardsExhausted { fallback, .. } => {
            let f = fallback.as_deref().unwrap();
            assert!(f.starts_with("quota_exhausted"), "{f}");
            assert!(f.contains("Insufficient Balance"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{e} {e:?}").contains("test-fallback-key"));
}

#[tokio::test]
async fn all_exhausted_without_fallback_lists_every_shard_state() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
        None,
    )
    .await;
    rig.shard_answers(
        2,
        403,
        fixture("transcribed/error-403-permission-denied-leaked-key.json"),
        None,
    )
    .await;
    rig.shard_answers(
        3,
        429,
        fixture("transcribed/error-429-per-minute-free-tier.json"),
        None,
    )
    .await;
    let pool = rig.pool(3, QuotaLimits::free_tier());
    let e = pool.generate(&ask()).await.unwrap_err();
    let Error::AllShardsExhausted {
        shards,
        next_usable,
        fallback,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(fallback.is_none());
    let states: Vec<(u32, ShardStatus)> =
        shards.iter().map(|s| (s.shard.get(), s.status)).collect();
    assert_eq!(
        states,
        vec![
            (1, ShardStatus::Exhausted),
            (2, ShardStatus::Disabled),
            (3, ShardStatus::Cooling)
        ]
    );
    assert_eq!(shards[0].next_usable, Some(utc("2026-01-16T08:00:00Z")));
    assert_eq!(shards[1].next_usable, None);
    assert_eq!(shards[2].next_usable, Some(utc("2026-01-15T20:00:58Z")));
    assert_eq!(*next_usable, Some(utc("2026-01-15T20:00:58Z")));
    let text = e.to_string();
    assert!(
        text.contains("shard1 exhausted until 2026-01-16T08:00:00+00:00"),
        "{text}"
    );
    assert!(text.contains("shard2 disabled"), "{text}");
    assert_eq!(e.kind(), ErrorKind::AllShardsExhausted);
}

#[tokio::test]
async fn the_ledger_counts_the_daily_quota_without_asking_google() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(1, 200, success_body("ok"), None).await;
    let pool = rig.pool(1, QuotaLimits::new(Some(2), None));
    pool.generate(&ask()).await.unwrap();
    pool.generate(&ask()).await.unwrap();
    let e = pool.generate(&ask()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AllShardsExhausted);
    assert_eq!(rig.requests_to(1).await, 2);
    assert_eq!(
        rig.bus.shard_quotas(&[sid(1)]).await.unwrap(),
        vec![Some(0)]
    );
}

#[tokio::test]
async fn racing_callers_never_overspend_a_shared_quota() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(1, 200, success_body("ok"), None).await;
    rig.shard_answers(2, 200, success_body("ok"), None).await;
    let pool = Arc::new(rig.pool(2, QuotaLimits::new(Some(5), None)));
    let calls = (0..30).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move { pool.generate(&ask()).await })
    });
    let results = futures::future::join_all(calls).await;
    let served = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    assert_eq!(served, 10);
    assert_eq!(rig.requests_to(1).await, 5);
    assert_eq!(rig.requests_to(2).await, 5);
}

#[tokio::test]
async fn the_pool_is_a_language_model() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(1, 200, success_body("as a model"), None)
        .await;
    let model: Arc<dyn LanguageModel> = Arc::new(rig.pool(1, QuotaLimits::free_tier()));
    let c = model.complete(CompletionRequest::new("hi")).await.unwrap();
    assert_eq!(c.text(), "as a model");
    assert_eq!(c.served_by.as_deref(), Some("shard1"));
    assert_eq!(c.usage.input_tokens, 5);
    assert_eq!(c.stop_reason, swarmbus_core::llm::StopReason::EndTurn);
    assert_eq!(model.model_id(), MODEL);
}

#[tokio::test]
async fn a_pool_error_seen_through_the_core_trait_says_whether_to_retry() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(
        1,
        400,
        fixture("transcribed/error-400-invalid-argument-bad-request.json"),
        None,
    )
    .await;
    let model: Arc<dyn LanguageModel> = Arc::new(rig.pool(1, QuotaLimits::free_tier()));
    let e = model
        .complete(CompletionRequest::new("hi"))
        .await
        .unwrap_err();
    assert_eq!(e.retry(), swarmbus_core::error::Retry::Never);
    assert!(e.to_string().contains("invalid_request"), "{e}");
}

#[tokio::test]
async fn a_shard_re_enabled_by_an_operator_is_recorded_ok_again_by_its_next_success() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(1, 200, success_body("ok"), None).await;
    let pool = rig.pool(1, QuotaLimits::free_tier());
    pool.generate(&ask()).await.unwrap();
    assert_eq!(rig.state(1).await.status, ShardStatus::Ok);
    // The operator disables the key; the pool is refused it …
    rig.bus
        .disable(sid(1), "operator: rotating the key", rig.clock.now())
        .await
        .unwrap();
    assert!(matches!(
        pool.generate(&ask()).await.unwrap_err(),
        Error::AllShardsExhausted { .. }
    ));
    // … then re-enables it: untested until a call proves it works.
    rig.bus.enable(sid(1), rig.clock.now()).await.unwrap();
    assert_eq!(rig.state(1).await.status, ShardStatus::Untested);
    pool.generate(&ask()).await.unwrap();
    assert_eq!(
        rig.state(1).await.status,
        ShardStatus::Ok,
        "the pool's memory of having marked the shard ok went stale"
    );
}

#[tokio::test]
async fn a_re_enable_the_pool_never_saw_is_recorded_ok_within_the_refresh_period() {
    let rig = Rig::new("2026-01-15T20:00:00Z").await;
    rig.shard_answers(1, 200, success_body("ok"), None).await;
    let pool = rig.pool(1, QuotaLimits::free_tier());
    pool.generate(&ask()).await.unwrap();
    // Another process disables and an operator re-enables the shard
    // between two of this pool's calls.
    rig.bus
        .disable(sid(1), "another process", rig.clock.now())
        .await
        .unwrap();
    rig.bus.enable(sid(1), rig.clock.now()).await.unwrap();
    rig.clock
        .advance(swarmbus_gemini::pool::MARK_OK_REFRESH + Duration::from_secs(1));
    pool.generate(&ask()).await.unwrap();
    assert_eq!(rig.state(1).await.status, ShardStatus::Ok);
}
