//! The MCP tools of the findings index and lifecycle, kept apart from
//! `mcp.rs` (their own tool router, added to the server's):
//! `put_findings` (a batch in one write) and `wait_for_findings` (a bounded
//! wait for findings newer than a cursor: the active loop in which worker B
//! continues from worker A's finding), `update_finding` (a new version, the
//! old one kept) and `delete_finding` (a tombstone, the last version kept).

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

/// `update_finding`'s arguments: what is not given stays.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct UpdateFindingArgs {
    /// The finding's id (`<id>` or `finding:<id>`).
    id: String,
    /// A new one-line summary.
    #[serde(default)]
    title: Option<String>,
    /// A new body.
    #[serde(default)]
    body: Option<String>,
    /// New tags (replace the old ones).
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Ids of findings this version builds on (added to the old ones).
    #[serde(default)]
    cites: Vec<String>,
}

/// `delete_finding`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct DeleteFindingArgs {
    /// The finding's id (`<id>` or `finding:<id>`).
    id: String,
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
        name = "update_finding",
        description = "Correct a finding: stores a new version under the same id (title, body, tags replaced where given; cites added) and keeps the old one; citations of the id stay valid. Returns the new version number."
    )]
    async fn update_finding(&self, Parameters(a): Parameters<UpdateFindingArgs>) -> ToolResult {
        let id = ops::finding_id(&a.id)?;
        let current = match self.bus.get_finding(&id).await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(crate::findings_cmd::unknown(&id)),
            Err(e) => return Err(format!("finding:{id} cannot be read: {e}")),
        };
        let mut cites = Vec::with_capacity(a.cites.len());
        for c in &a.cites {
            cites.push(ops::finding_id(c)?);
        }
        let change = crate::findings_cmd::Change {
            title: a.title,
            body: a.body,
            tags: a.tags,
            cites,
        };
        let revised = change.apply(&current, chrono::Utc::now())?;
        let version = crate::findings_cmd::update(&self.bus, &revised).await?;
        Ok(ok_json(json!({
            "id": id.to_string(),
            "key": self.ctx.finding_key(&id),
            "version": version,
        })))
    }

    #[tool(
        name = "delete_finding",
        description = "Delete a finding: it leaves counts, listings and searches, and is kept (its last version and a tombstone) for export and history. Deleting it again is harmless; the id cannot be stored again."
    )]
    async fn delete_finding(&self, Parameters(a): Parameters<DeleteFindingArgs>) -> ToolResult {
        let id = ops::finding_id(&a.id)?;
        let t = crate::findings_cmd::delete(&self.bus, &id).await?;
        Ok(ok_json(json!({
            "id": id.to_string(),
            "key": self.ctx.finding_key(&id),
            "deleted": true,
            "version": t.version,
            "removed_at": t.removed_at.to_rfc3339(),
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
