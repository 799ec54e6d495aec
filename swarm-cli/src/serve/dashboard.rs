//! The dashboard at `/`: one HTML page compiled into the binary (no external
//! assets, no Node at run time), its data from `/api/state` (JSON) and
//! `/api/feed` (server-sent events), halt and resume through `/api/halt` and
//! `/api/resume` (admin tokens only).
//!
//! CSRF: the page keeps the token in the tab's `sessionStorage` and sends it
//! in an `Authorization` header from JavaScript, never in a cookie or a URL,
//! so no other site can make a browser send it. The two writes also require
//! the header `X-Swarm-Csrf: 1` and a JSON body: a cross-site form cannot
//! send either without a CORS preflight, which this server never grants.
//! That also guards a loopback server running without tokens, whose
//! anonymous callers are admins; its `Host` header is checked against the
//! loopback names (DNS rebinding) as for `/mcp`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use swarmbus_agents::status::StatusConfig;
use swarmbus_core::Tier;
use swarmbus_core::keys::ShardId;
use swarmbus_core::quota::QuotaLimits;
use swarmbus_cost::{Ledger, LedgerEntry, Money, PriceTable, Report, Tiers};

use super::auth::Role;
use super::{AppState, Grant, refuse};
use crate::ops::{self, Search};

const PAGE: &str = include_str!("assets/dashboard.html");

/// How often the feed looks for new findings.
const FEED_POLL: Duration = Duration::from_millis(500);
/// Findings the feed starts with.
const FEED_FIRST: usize = 20;
/// Points of the spend chart at most (the ledger is bucketed down to it).
const CHART_POINTS: usize = 200;

/// `GET /`: the page. It holds no data (the data needs a token).
pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; form-action 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
        .into_response()
}

fn role_of(req: &Request) -> Role {
    req.extensions()
        .get::<Grant>()
        .map_or(Role::Read, |g| g.role)
}

/// The shards the dashboard and `/metrics` show.
pub(crate) fn shards() -> Vec<ShardId> {
    StatusConfig::default().shards
}

/// The ledger's entries with the built-in prices.
pub(crate) async fn ledger_entries(
    state: &AppState,
) -> Result<(Vec<LedgerEntry>, Arc<PriceTable>), String> {
    let table = state.ctx.prices().map_err(|e| format!("prices: {e}"))?;
    let ledger = Ledger::new(Arc::clone(&state.bus), Arc::clone(&table))
        .map_err(|e| format!("ledger: {e}"))?;
    let entries = ledger
        .entries()
        .await
        .map_err(|e| format!("ledger: {e}"))?
        .entries;
    Ok((entries, table))
}

/// `GET /api/state`: status, workers, shards, spend over time, halt.
pub(crate) async fn state(State(state): State<AppState>, req: Request) -> Response {
    let role = role_of(&req);
    match state_json(&state).await {
        Ok(mut v) => {
            v["role"] = json!(role.as_str());
            Json(v).into_response()
        }
        Err(e) => refuse(StatusCode::SERVICE_UNAVAILABLE, &crate::ctx::one_line(&e)),
    }
}

fn usd(m: Money) -> f64 {
    m.to_f64_lossy()
}

/// Cumulative spend per tier and the worker share of calls, one point per
/// bucket of calls (oldest first).
fn series(entries: &[LedgerEntry], tiers: &Tiers) -> Vec<Value> {
    let mut running: BTreeMap<String, Money> = BTreeMap::new();
    let (mut worker, mut both) = (0u64, 0u64);
    let every = entries.len().div_ceil(CHART_POINTS).max(1);
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let spent = e.cost.usd().unwrap_or_default();
        *running.entry(e.tier.to_string()).or_default() += spent;
        match e.role.or_else(|| tiers.role_of(&e.tier)) {
            Some(Tier::Worker) => {
                worker += 1;
                both += 1;
            }
            Some(Tier::Coordinator) => both += 1,
            _ => {}
        }
        if (i + 1) % every == 0 || i + 1 == entries.len() {
            let share = if both == 0 {
                0.0
            } else {
                worker as f64 / both as f64
            };
            let t: BTreeMap<&String, f64> = running.iter().map(|(k, v)| (k, usd(*v))).collect();
            out.push(json!({"at": e.at.to_rfc3339(), "tiers": t, "worker_share": share}));
        }
    }
    out
}

async fn state_json(state: &AppState) -> Result<Value, String> {
    let status = ops::status(&state.bus, &state.ctx.status_config()).await?;
    let beats = state
        .bus
        .alive_workers()
        .await
        .map_err(|e| format!("workers: {e}"))?;
    let tiers = state.ctx.tiers();
    let (entries, table) = ledger_entries(state).await?;
    let report = Report::build(entries.iter(), tiers, &table);
    // A worker's tier: that of its last ledger call, else its id's prefix
    // when that names a tier.
    let mut tier_of: HashMap<String, String> = HashMap::new();
    for e in &entries {
        if let Some(w) = &e.worker {
            tier_of.insert(w.to_string(), e.tier.to_string());
        }
    }
    let known = [&tiers.coordinator, &tiers.worker, &tiers.librarian];
    let workers: Vec<Value> = beats
        .iter()
        .map(|h| {
            let id = h.worker.to_string();
            let tier = tier_of.get(&id).cloned().or_else(|| {
                let prefix = id.split(['-', '_', '.', ':']).next().unwrap_or_default();
                known
                    .iter()
                    .find(|t| t.name.as_str() == prefix)
                    .map(|t| t.name.to_string())
            });
            json!({"worker": id, "tier": tier, "last_beat": h.at.to_rfc3339()})
        })
        .collect();
    let now = state.ctx.clock().now();
    let ids = shards();
    let states = state
        .bus
        .shard_states(&ids, QuotaLimits::unlimited(), now)
        .await
        .map_err(|e| format!("shards: {e}"))?;
    let shards: Vec<Value> = status
        .shards
        .iter()
        .map(|q| {
            let st = states.iter().find(|s| s.shard == q.shard);
            json!({
                "shard": q.shard.to_string(),
                "status": st.map(|s| s.status),
                "quota": q.quota,
                "used_today": st.map(|s| s.used_today),
            })
        })
        .collect();
    let by = |m: &BTreeMap<String, swarmbus_cost::Totals>| -> BTreeMap<String, Value> {
        m.iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    json!({"usd": usd(t.usd), "calls": t.calls, "tokens": t.usage.total_tokens()}),
                )
            })
            .collect()
    };
    Ok(json!({
        "namespace": state.namespace,
        "block": status.render(),
        "findings": status.findings,
        "workers": workers,
        "shards": shards,
        "spend": {
            "by_tier": by(&report.by_tier),
            "by_model": by(&report.by_model),
            "total": usd(report.total.usd),
            "series": series(&entries, tiers),
        },
        "worker_share": report.worker_share,
        "worker_tier": tiers.worker.name.to_string(),
        "halted": status.halted.as_ref().map(ops::halt_json),
    }))
}

/// `GET /api/feed`: findings as server-sent events (`finding`, JSON), the
/// newest [`FEED_FIRST`] first (oldest of them first), then each new one
/// within about [`FEED_POLL`] of its joining the index.
pub(crate) async fn feed(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(
        (state, HashSet::<String>::new(), true),
        |(state, mut seen, first)| async move {
            if !first {
                tokio::time::sleep(FEED_POLL).await;
            }
            let search = Search {
                limit: Some(FEED_FIRST),
                ..Search::default()
            };
            let ctx = Arc::clone(&state.ctx);
            let page = ops::search_findings(&state.bus, &search, |id| ctx.finding_key(id)).await;
            let mut events = Vec::new();
            if let Ok(page) = page {
                for f in page.findings.iter().rev() {
                    let id = f["id"].as_str().unwrap_or_default().to_owned();
                    if seen.insert(id) {
                        events.push(Ok(Event::default().event("finding").data(f.to_string())));
                    }
                }
            }
            Some((futures::stream::iter(events), (state, seen, false)))
        },
    );
    Sse::new(stream.flatten()).keep_alive(KeepAlive::default())
}

fn csrf_ok(headers: &HeaderMap) -> bool {
    let marked = headers.get("x-swarm-csrf").is_some_and(|v| v == "1");
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    marked && json
}

fn check_write(req: &Request) -> Result<(), Box<Response>> {
    if !csrf_ok(req.headers()) {
        return Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            "send X-Swarm-Csrf: 1 with a JSON body (cross-site requests are refused)",
        )));
    }
    if role_of(req) < Role::Admin {
        return Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            "halt and resume need an admin token",
        )));
    }
    Ok(())
}

/// `POST /api/halt` (admin): `{"reason": "…"}`.
pub(crate) async fn halt(State(state): State<AppState>, req: Request) -> Response {
    if let Err(r) = check_write(&req) {
        return *r;
    }
    let by = req.extensions().get::<Grant>().map_or_else(
        || "dashboard".to_string(),
        |g| format!("dashboard:{}", g.who),
    );
    let Ok(body) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "body over 64 KiB");
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let reason = v["reason"].as_str().unwrap_or("halted from the dashboard");
    tracing::info!(by = %by, "halt from the dashboard");
    match ops::halt(&state.bus, reason, &by).await {
        Ok((set, report)) => {
            Json(json!({"halted": true, "by_this_call": set, "report": ops::halt_json(&report)}))
                .into_response()
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e),
    }
}

/// `POST /api/resume` (admin).
pub(crate) async fn resume(State(state): State<AppState>, req: Request) -> Response {
    if let Err(r) = check_write(&req) {
        return *r;
    }
    match state.bus.clear_halt().await {
        Ok(was) => {
            Json(json!({"halted": false, "was": was.as_ref().map(ops::halt_json)})).into_response()
        }
        Err(e) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("cannot clear halt:reason: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_needs_the_header_and_json() {
        let mut h = HeaderMap::new();
        assert!(!csrf_ok(&h));
        h.insert(
            "x-swarm-csrf",
            "1".parse().unwrap_or(header::HeaderValue::from_static("")),
        );
        assert!(!csrf_ok(&h), "a form's content type is refused");
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        assert!(csrf_ok(&h));
        h.insert("x-swarm-csrf", header::HeaderValue::from_static("0"));
        assert!(!csrf_ok(&h));
    }
}
