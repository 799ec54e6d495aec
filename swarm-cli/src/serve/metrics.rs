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
use swarmbus_core::keys::ShardId;
use swarmbus_core::status::{StatusConfig, SwarmStatus};

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

/// Labels by shard.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: String,
}

/// What the server measures itself.
#[derive(Debug)]
pub(crate) struct Metrics {
    tools: Family<ToolLabels, Histogram>,
}

impl Metrics {
    /// Empty histograms (0.1 ms to ~3 s).
    pub(crate) fn new() -> Self {
        Self {
            tools: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
        }
    }

    /// Records one MCP tool call.
    pub(crate) fn observe_tool(&self, tool: &str, ok: bool, took: Duration) {
        self.tools
            .get_or_create(&ToolLabels {
                tool: tool.to_string(),
                outcome: if ok { "ok" } else { "error" }.to_string(),
            })
            .observe(took.as_secs_f64());
    }
}

/// The text exposition.
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    let shards: Vec<ShardId> = (1..=5).filter_map(|n| ShardId::new(n).ok()).collect();
    let config = StatusConfig::default().shards(shards);
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
