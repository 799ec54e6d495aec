//! The brief's shard test protocol: every librarian shard is tested with a
//! cheap query, its status and quota are recorded on the bus, and paper
//! work starts only when at least 80 % of the shards are operational.
//!
//! Offline, a local mock Gemini server (wiremock) answers shards 1 to 4
//! with a recorded success and shard 5 with a recorded per-day 429.

use std::sync::Arc;

use secrecy::SecretString;
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::Bus;
use swarmbus_core::keys::ShardId;
use swarmbus_core::quota::QuotaLimits;
use swarmbus_gemini::pool::shards_from_env;
use swarmbus_gemini::probe::PAPER_WORK_MIN_PERCENT;
use swarmbus_gemini::{
    ClientConfig, DEFAULT_MODEL, PoolConfig, ShardConfig, ShardPool, ShardTestReport,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{AnyError, repo_root};

/// The model the offline mock answers for.
pub const MOCK_MODEL: &str = "gemini-2.5-flash";

/// The shards tested offline.
pub const MOCK_SHARDS: u32 = 5;

/// What the shard test found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShardVerdict {
    /// Each shard's result.
    pub report: ShardTestReport,
    /// Whether paper work may start (at least 80 % operational).
    pub proceed: bool,
    /// The status block's `Librarians:` line.
    pub librarians_line: String,
}

/// A recorded response of the Gemini API, as captured in swarm-gemini's
/// test fixtures.
fn recorded(name: &str) -> Result<Vec<u8>, AnyError> {
    let p = repo_root().join("swarm-gemini/tests/fixtures").join(name);
    std::fs::read(&p).map_err(|e| format!("fixture {}: {e}", p.display()).into())
}

fn mock_key(n: u32) -> String {
    format!("example-shard-key-{n}")
}

/// Starts a local Gemini stand-in: shards 1 to 4 answer with a recorded
/// success, shard 5 with a recorded per-day quota 429. Returns the server
/// (keep it alive) and the shards' configuration.
pub async fn mock_gemini() -> Result<(MockServer, Vec<ShardConfig>), AnyError> {
    let server = MockServer::start().await;
    let ok = recorded("googleai/unary-success-basic-reply-short.json")?;
    let per_day = recorded("transcribed/error-429-per-day-free-tier.json")?;
    let mut shards = Vec::new();
    for n in 1..=MOCK_SHARDS {
        let (status, body) = if n == MOCK_SHARDS {
            (429, per_day.clone())
        } else {
            (200, ok.clone())
        };
        Mock::given(method("POST"))
            .and(path(format!("/v1beta/models/{MOCK_MODEL}:generateContent")))
            .and(header("x-goog-api-key", mock_key(n).as_str()))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        shards.push(
            ShardConfig::new(ShardId::new(n)?, SecretString::from(mock_key(n)))
                .with_project(format!("project-{n}")),
        );
    }
    Ok((server, shards))
}

/// Tests `shards` through a pool on `bus` (the client `client`, the model
/// `model`), prints each result and the verdict, then the status block's
/// `Librarians:` line.
pub async fn test_shards(
    bus: Arc<dyn Bus>,
    shards: Vec<ShardConfig>,
    client: ClientConfig,
    model: &str,
) -> Result<ShardVerdict, AnyError> {
    let pool = ShardPool::new(
        shards,
        Arc::clone(&bus),
        PoolConfig::default().model(model.to_owned()).client(client),
    )?;
    let report = pool.test_shards().await?;
    println!(
        "Shard test ({} shards, model {}):",
        report.total(),
        report.model
    );
    for s in &report.shards {
        let quota = s
            .remaining_today
            .map_or("unknown".to_owned(), |r| r.to_string());
        let latency = s
            .latency
            .map_or("-".to_owned(), |l| format!("{} ms", l.as_millis()));
        let why = match (&s.error_kind, &s.error) {
            (Some(k), Some(e)) => format!(" — {k:?}: {e}"),
            (Some(k), None) => format!(" — {k:?}"),
            (None, Some(e)) => format!(" — {e}"),
            (None, None) => String::new(),
        };
        println!(
            "  Shard{}: {} ({:?}), {quota} requests left today, {latency}{why}",
            s.shard,
            if s.operational {
                "operational"
            } else {
                "NOT operational"
            },
            s.status,
        );
    }
    let proceed = report.ready_for_paper_work();
    println!(
        "{}/{} operational ({:.0} %): {}",
        report.operational(),
        report.total(),
        report.operational_fraction() * 100.0,
        if proceed {
            format!("at least {PAPER_WORK_MIN_PERCENT} %, paper work may proceed")
        } else {
            format!("below {PAPER_WORK_MIN_PERCENT} %, refusing to start paper work")
        }
    );
    let status = SwarmStatus::snapshot(&*bus, &StatusConfig::default())
        .await?
        .render();
    let librarians_line = status
        .lines()
        .find(|l| l.starts_with("Librarians:"))
        .unwrap_or("Librarians: (none)")
        .to_owned();
    println!("{librarians_line}");
    Ok(ShardVerdict {
        report,
        proceed,
        librarians_line,
    })
}

/// The example's run: the real shards when `GEMINI_API_KEY_SHARD<N>` keys
/// are set, else the local mock.
pub async fn shard_testing(bus: Arc<dyn Bus>) -> Result<ShardVerdict, AnyError> {
    let real = shards_from_env(QuotaLimits::free_tier())?;
    if real.is_empty() {
        println!("Shards: local mock Gemini (set GEMINI_API_KEY_SHARD1..N to test real shards)");
        let (server, shards) = mock_gemini().await?;
        let client = ClientConfig::default().base_url(server.uri());
        test_shards(bus, shards, client, MOCK_MODEL).await
    } else {
        println!(
            "Shards: {} real shard(s) from GEMINI_API_KEY_SHARD<N>",
            real.len()
        );
        test_shards(bus, real, ClientConfig::from_env(), DEFAULT_MODEL).await
    }
}
