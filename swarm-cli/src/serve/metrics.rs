//! `/metrics`: the swarm in the Prometheus text format, read from the bus
//! at each scrape (a constant number of reads), plus this server's MCP tool
//! latencies.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use swarmbus_agents::status::SwarmStatus;
use swarmbus_core::keys::ShardId;

use super::AppState;

/// Labels of a tool call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    outcome: String,
}

/// Labels by tier.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: String,
}

/// Labels by tier and model.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ModelLabels {
    tier: String,
    model: String,
}

/// Labels by tier, model and token bucket.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    tier: String,
    model: String,
    bucket: String,
}

/// Labels of a librarian answer.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// Labels by shard.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: String,
}

/// What the server measures itself.
#[derive(Debug)]
pub(crate) struct Metrics {
    tools: Family<ToolLabels, Histogram>,
    librarian: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// Empty histograms (0.1 ms to ~3 s).
    pub(crate) fn new() -> Self {
        Self {
            tools: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
            librarian: Family::default(),
        }
    }

    /// Records one MCP tool call.
    pub(crate) fn observe_tool(&self, tool: &str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        if tool == "ask_librarian" {
            self.librarian
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.to_string(),
                })
                .inc();
        }
        self.tools
            .get_or_create(&ToolLabels {
                tool: tool.to_string(),
                outcome: if ok { "ok" } else { "error" }.to_string(),
            })
            .observe(took.as_secs_f64());
    }
}

/// The ledger's counters (the same records `swarm cost report` reads):
/// spend, calls and tokens per tier, model and token bucket, and the
/// worker tier's share of worker + coordinator calls against the target.
fn register_ledger(
    registry: &mut Registry,
    entries: &[swarmbus_cost::LedgerEntry],
    table: &swarmbus_cost::PriceTable,
    tiers: &swarmbus_cost::Tiers,
) {
    use std::collections::BTreeMap;
    use swarmbus_cost::Money;
    let mut spend: BTreeMap<ModelLabels, Money> = BTreeMap::new();
    let calls = Family::<ModelLabels, Counter>::default();
    let tokens = Family::<BucketLabels, Counter>::default();
    for e in entries {
        let labels = ModelLabels {
            tier: e.tier.to_string(),
            model: e.model.clone(),
        };
        *spend.entry(labels.clone()).or_default() += e.cost.usd().unwrap_or_default();
        calls.get_or_create(&labels).inc();
        let u = &e.usage;
        for (bucket, n) in [
            ("input", u.input_tokens),
            ("cache_read", u.cache_read_tokens),
            ("cache_write_5m", u.cache_write_5m_tokens),
            ("cache_write_1h", u.cache_write_1h_tokens),
            ("output", u.output_tokens),
        ] {
            tokens
                .get_or_create(&BucketLabels {
                    tier: labels.tier.clone(),
                    model: labels.model.clone(),
                    bucket: bucket.to_string(),
                })
                .inc_by(n);
        }
    }
    let usd = Family::<ModelLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    for (labels, m) in spend {
        usd.get_or_create(&labels).inc_by(m.to_f64_lossy());
    }
    registry.register(
        "ledger_spend_usd",
        "Spend per tier and model from the cost ledger, dollars",
        usd,
    );
    registry.register(
        "model_calls",
        "Model calls per tier and model in the cost ledger",
        calls,
    );
    registry.register(
        "tokens",
        "Tokens per tier, model and bucket (input, cache_read, cache_write_5m, cache_write_1h, output) in the cost ledger",
        tokens,
    );
    let report = swarmbus_cost::Report::build(entries.iter(), tiers, table);
    let share = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    share.set(percent_ratio(&report.worker_share.calls.to_string()));
    registry.register(
        "worker_call_share_ratio",
        "Worker tier's share of worker + coordinator calls in the ledger",
        share,
    );
    let target = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    target.set(percent_ratio(&report.worker_share.target.to_string()));
    registry.register(
        "worker_share_target_ratio",
        "The worker share target (0.9)",
        target,
    );
}

/// `"75.0"` (percent) as `0.75`.
fn percent_ratio(percent: &str) -> f64 {
    percent
        .trim_end_matches('%')
        .trim()
        .parse::<f64>()
        .unwrap_or(0.0)
        / 100.0
}

/// The text exposition.
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    let shards: Vec<ShardId> = (1..=5).filter_map(|n| ShardId::new(n).ok()).collect();
    let config = state.ctx.status_config().shards(shards);
    let status = match SwarmStatus::snapshot(&*state.bus, &config).await {
        Ok(s) => s,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "# bus unreadable: {}\n",
                    crate::ctx::one_line(&e.to_string())
                ),
            )
                .into_response();
        }
    };
    let dead = state.bus.failed_tasks().await.map(|f| f.len()).ok();
    let tasks = match &state.redis {
        Some(r) => r.task_totals().await.ok(),
        None => None,
    };
    let ledger = super::dashboard::ledger_entries(&state).await;
    let mut registry = Registry::with_prefix("swarm");

    // A value the bus could not read is left out (an absent sample, not a
    // wrong one); the status JSON names why.
    if let Some(n) = status.findings {
        let findings: Gauge = Gauge::default();
        findings.set(i64::try_from(n).unwrap_or(i64::MAX));
        registry.register("findings", "Active findings", findings);
    }
    if let Some(n) = status.active_workers {
        let workers: Gauge = Gauge::default();
        workers.set(i64::try_from(n).unwrap_or(i64::MAX));
        registry.register(
            "active_workers",
            "Workers with a current heartbeat",
            workers,
        );
    }

    if let Some(dead) = dead {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(dead).unwrap_or(i64::MAX));
        registry.register("tasks_dead", "Tasks in the dead-letter list", g);
    }
    if let Some(t) = tasks {
        let queued: Gauge = Gauge::default();
        queued.set(i64::try_from(t.queued).unwrap_or(i64::MAX));
        registry.register("tasks_queued", "Tasks pushed and not yet claimed", queued);
        let flight: Gauge = Gauge::default();
        flight.set(i64::try_from(t.in_flight).unwrap_or(i64::MAX));
        registry.register(
            "tasks_in_flight",
            "Tasks claimed and not yet completed or failed",
            flight,
        );
    }
    if let Ok((entries, table)) = &ledger {
        register_ledger(&mut registry, entries, table, state.ctx.tiers());
    }
    registry.register(
        "librarian_answers",
        "ask_librarian calls answered through this server, by outcome",
        state.metrics.librarian.clone(),
    );
    let failover_name =
        swarmbus_core::keys::CounterName::new(crate::librarian_cmd::FAILOVERS_COUNTER);
    if let Ok(name) = failover_name
        && let Ok(values) = state.bus.counters(std::slice::from_ref(&name)).await
        && let Some(n) = values.first()
    {
        let failovers: Counter = Counter::default();
        failovers.inc_by(u64::try_from(*n).unwrap_or(0));
        registry.register(
            "librarian_failovers",
            "Librarian calls moved on from a shard that could not serve (to another shard or the fallback), every librarian process",
            failovers,
        );
    }

    let spend = Family::<TierLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    for c in &status.costs {
        if let Some(usd) = c.usd.filter(|u| u.is_finite() && *u >= 0.0) {
            spend
                .get_or_create(&TierLabels {
                    tier: c.tier.to_string(),
                })
                .inc_by(usd);
        }
    }
    registry.register("spend_usd", "Spend per tier (cost:<tier>), dollars", spend);

    if let Some(e) = status.efficiency {
        let share = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        share.set(f64::from(e.worker.permille()) / 1000.0);
        registry.register(
            "worker_share_ratio",
            "Worker tier's share of worker + coordinator spend (target 0.9)",
            share,
        );
    }

    let quota = Family::<ShardLabels, Gauge>::default();
    for s in &status.shards {
        if let Some(q) = s.quota {
            quota
                .get_or_create(&ShardLabels {
                    shard: s.shard.to_string(),
                })
                .set(q);
        }
    }
    registry.register(
        "shard_quota_remaining",
        "Requests left today per shard",
        quota,
    );

    let halted: Gauge = Gauge::default();
    halted.set(i64::from(status.halted.is_some()));
    registry.register("halted", "1 while halt:reason is set", halted);

    registry.register(
        "mcp_tool_duration_seconds",
        "MCP tool calls over HTTP, by tool and outcome",
        state.metrics.tools.clone(),
    );

    let mut body = String::new();
    if let Err(e) = encode(&mut body, &registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("# {e}\n")).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
