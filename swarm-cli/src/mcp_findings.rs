//! The MCP tools of the findings index and lifecycle, kept apart from
//! `mcp.rs` (their own tool router, added to the server's):
//! `put_findings` (a batch in one write) and `wait_for_findings` (a bounded
//! wait for findings newer than a cursor: the active loop in which worker B
//! continues from worker A's finding).

use std::time::Duration;

use futures::StreamExt;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use swarmbus_core::keys::{Channel, SessionId};
use swarmbus_core::search::SearchQuery;

use super::{SwarmMcp, ToolResult, ok_json};
use crate::ops::{self, NewFinding};

/// The most findings one `put_findings` call stores.
const MAX_BATCH: usize = 100;

/// The longest `wait_for_findings` waits.
const MAX_WAIT_MS: u64 = 30_000;

/// One finding of `put_findings`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct BatchFinding {
    /// One-line summary (required, at most 512 bytes).
    title: String,
    /// The facts (at most 256 KiB).
    #[serde(default)]
    body: String,
    /// Labels to filter on.
    #[serde(default)]
    tags: Vec<String>,
    /// The session (default "claude-code").
    #[serde(default)]
    session: Option<String>,
    /// Who found it (default "claude-code").
    #[serde(default)]
    worker: Option<String>,
}

/// `put_findings`' arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PutFindingsArgs {
    /// 1 to 100 findings, stored in one step: all or none.
    findings: Vec<BatchFinding>,
}

/// `wait_for_findings`' arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(crate) struct WaitForFindingsArgs {
    /// The `cursor` a previous call returned: only findings stored after it
    /// are returned. Omit on the first call (it returns the newest ones).
    #[serde(default)]
    cursor: Option<String>,
    /// How long to wait for a new finding, in ms (0 to 30000, default 10000).
    #[serde(default)]
    wait_ms: Option<u64>,
    /// Only findings of this session.
    #[serde(default)]
    session: Option<String>,
    /// Only findings with this tag.
    #[serde(default)]
    tag: Option<String>,
}

#[tool_router(router = findings_router, vis = "pub(crate)")]
impl SwarmMcp {
    #[tool(
        name = "put_findings",
        description = "Store several findings (1 to 100) in one step: all are checked first, and a bad one stores none. Returns their ids and keys in order."
    )]
    async fn put_findings(&self, Parameters(a): Parameters<PutFindingsArgs>) -> ToolResult {
        if a.findings.is_empty() || a.findings.len() > MAX_BATCH {
            return Err(format!(
                "give 1 to {MAX_BATCH} findings (got {}); split a larger batch",
                a.findings.len()
            ));
        }
        let mut built = Vec::with_capacity(a.findings.len());
        for (i, f) in a.findings.into_iter().enumerate() {
            let new = NewFinding {
                title: f.title,
                body: f.body,
                tags: f.tags,
                session: f.session,
                worker: f.worker,
                task: None,
            };
            built.push(new.build().map_err(|e| format!("finding {i}: {e}"))?);
        }
        let stored = self
            .bus
            .put_findings(&built)
            .await
            .map_err(|e| format!("cannot store the findings: {e}"))?;
        Ok(ok_json(json!({
            "stored": stored,
            "findings": built.iter().map(|f| json!({
                "id": f.id.to_string(),
                "key": self.ctx.finding_key(&f.id),
            })).collect::<Vec<_>>(),
        })))
    }

    #[tool(
        name = "wait_for_findings",
        description = "Wait (at most wait_ms, up to 30 s) for findings stored after `cursor`, newest first; returns them with a new cursor to pass next time. Without a cursor it returns the newest findings at once. Use it to continue from another worker's finding."
    )]
    async fn wait_for_findings(
        &self,
        Parameters(a): Parameters<WaitForFindingsArgs>,
    ) -> ToolResult {
        let wait = Duration::from_millis(a.wait_ms.unwrap_or(10_000).min(MAX_WAIT_MS));
        let mut query = SearchQuery::listing().limit(50);
        if let Some(s) = a.session.as_deref().filter(|s| !s.is_empty()) {
            query = query.session(SessionId::new(s).map_err(|e| format!("session: {e}"))?);
        }
        if let Some(t) = a.tag.as_deref().filter(|t| !t.is_empty()) {
            query = query.tag(t);
        }
        let after = match a.cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(Some(ops::finding_id(c)?)),
        };
        // Subscribed before looking, so a finding stored in between wakes us.
        let mut sub = self.bus.subscribe(Channel::Findings).await.ok();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let page = self
                .bus
                .search_findings(&query)
                .await
                .map_err(|e| format!("cannot list findings: {e}"))?;
            let newest = page.hits.first().map(|h| h.id.clone());
            let fresh: Vec<_> = match &after {
                None => page.hits.iter().map(|h| h.id.clone()).collect(),
                Some(seen) => page
                    .hits
                    .iter()
                    .take_while(|h| Some(&h.id) != seen.as_ref())
                    .map(|h| h.id.clone())
                    .collect(),
            };
            let now = tokio::time::Instant::now();
            if !fresh.is_empty() || after.is_none() || now >= deadline {
                let found = self
                    .bus
                    .get_findings(&fresh)
                    .await
                    .map_err(|e| format!("cannot read findings: {e}"))?;
                let findings: Vec<_> = found
                    .into_iter()
                    .flatten()
                    .map(|f| ops::listed_json(&f, &self.ctx.finding_key(&f.id)))
                    .collect();
                let cursor = newest
                    .or_else(|| after.clone().flatten())
                    .map(|id| id.to_string());
                return Ok(ok_json(json!({
                    "findings": findings,
                    "cursor": cursor,
                    "timed_out": fresh.is_empty(),
                })));
            }
            let left = deadline - now;
            match sub.as_mut() {
                Some(s) => {
                    // A message or the end of the wait; either way look again.
                    let _ = tokio::time::timeout(left, s.next()).await;
                }
                None => tokio::time::sleep(left.min(Duration::from_millis(200))).await,
            }
        }
    }
}
