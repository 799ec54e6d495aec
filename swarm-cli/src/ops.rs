//! What `swarm mcp`'s tools and their CLI twins do, in one place: each
//! operation checks its input first (nothing is stored on bad input) and
//! fails with a message an agent can act on.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::HaltReport;
use swarmbus_core::bus::Bus;
use swarmbus_core::search::SearchQuery;
use swarmbus_core::{Finding, FindingId, SessionId, Task, TaskId, WorkerId};

/// Largest finding title accepted, in bytes.
pub(crate) const MAX_TITLE_BYTES: usize = 512;
/// Largest finding body accepted, in bytes (a finding is a note for other
/// agents, not a file: well under the bus's 1 MiB value limit).
pub(crate) const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most tags on one finding.
pub(crate) const MAX_TAGS: usize = 32;
/// Largest tag, in bytes.
pub(crate) const MAX_TAG_BYTES: usize = 64;
/// The session a finding or task belongs to when none is given.
pub(crate) const DEFAULT_SESSION: &str = "claude-code";
/// The worker a finding is written by when none is given.
pub(crate) const DEFAULT_WORKER: &str = "claude-code";
/// Default and largest page of a search.
pub(crate) const DEFAULT_PAGE: usize = 20;
/// Largest page of a search, in findings.
pub(crate) const MAX_PAGE: usize = 100;
/// Largest page of a search, in bytes of JSON (about 6k tokens at 4 bytes a
/// token, well under an agent's 10k-token tool result budget).
pub(crate) const MAX_PAGE_BYTES: usize = 24 * 1024;
/// Longest body shown in a listing, in characters; longer ones end with
/// [`TRUNCATED_MARKER`].
pub(crate) const LISTING_BODY_CHARS: usize = 600;
/// Ends a body cut short in a listing.
pub(crate) const TRUNCATED_MARKER: &str = "… [truncated; get_finding has the full text]";
/// Longest a task claim waits for a task.
pub(crate) const MAX_CLAIM_WAIT_SECS: u64 = 60;
/// How long a claim keeps its worker counted alive: a Claude Code subagent
/// may work on one task for minutes.
pub(crate) const CLAIM_HEARTBEAT: Duration = Duration::from_secs(600);
/// Largest task payload, in bytes of JSON.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Longest question for the librarian, in bytes.
pub(crate) const MAX_QUESTION_BYTES: usize = 8 * 1024;
/// Longest halt reason or failure report, in bytes.
pub(crate) const MAX_REPORT_BYTES: usize = 16 * 1024;

/// A failed operation: a message for the agent or user.
pub(crate) type OpResult<T> = Result<T, String>;

/// A finding to write.
#[derive(Debug, Default, Clone)]
pub(crate) struct NewFinding {
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) tags: Vec<String>,
    pub(crate) session: Option<String>,
    pub(crate) worker: Option<String>,
    pub(crate) task: Option<TaskId>,
}

fn session_id(s: Option<&str>) -> OpResult<SessionId> {
    let s = s
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(DEFAULT_SESSION);
    SessionId::new(s).map_err(|e| format!("session: {e}"))
}

fn worker_id(s: Option<&str>, default: &str) -> OpResult<WorkerId> {
    let s = s.filter(|s| !s.trim().is_empty()).unwrap_or(default);
    WorkerId::new(s).map_err(|e| format!("worker: {e}"))
}

/// Parses a finding id, with a message that says what one looks like.
pub(crate) fn finding_id(id: &str) -> OpResult<FindingId> {
    let id = id.trim();
    FindingId::parse(id.strip_prefix("finding:").unwrap_or(id)).map_err(|e| {
        format!(
            "{e}; give the id put_finding or search_findings returned (`finding:<id>` or `<id>`)"
        )
    })
}

fn task_id(id: &str) -> OpResult<TaskId> {
    TaskId::parse(id.trim()).map_err(|e| format!("{e}; give the task_id claim_task returned"))
}

impl NewFinding {
    /// Checks everything and builds the finding.
    pub(crate) fn build(&self) -> OpResult<Finding> {
        if self.title.trim().is_empty() {
            return Err("title must not be empty: give a one-line summary of the finding".into());
        }
        if self.title.len() > MAX_TITLE_BYTES {
            return Err(format!(
                "title is {} bytes, over the limit of {MAX_TITLE_BYTES}: put the detail in the body",
                self.title.len()
            ));
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Err(format!(
                "body is {} bytes, over the limit of {MAX_BODY_BYTES}: summarise it, or split it into several findings",
                self.body.len()
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(format!(
                "{} tags, over the limit of {MAX_TAGS}",
                self.tags.len()
            ));
        }
        let mut tags = Vec::with_capacity(self.tags.len());
        for t in &self.tags {
            let t = t.trim();
            if t.is_empty() || t.len() > MAX_TAG_BYTES || t.chars().any(char::is_control) {
                return Err(format!(
                    "tag {:?} is not a tag: 1 to {MAX_TAG_BYTES} bytes without control characters",
                    shorten(t, 80)
                ));
            }
            tags.push(t.to_owned());
        }
        let mut finding = Finding::new(
            worker_id(self.worker.as_deref(), DEFAULT_WORKER)?,
            session_id(self.session.as_deref())?,
            self.title.trim(),
            self.body.clone(),
        )
        .with_tags(tags);
        if let Some(t) = self.task {
            finding = finding.with_task(t);
        }
        finding.validate().map_err(|e| e.to_string())?;
        Ok(finding)
    }
}

/// Cuts `s` to at most `max` characters.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// The JSON of a finding in full.
pub(crate) fn finding_json(f: &Finding, key: &str) -> Value {
    json!({
        "id": f.id.to_string(),
        "key": key,
        "title": f.title,
        "body": f.body,
        "tags": f.tags,
        "session": f.session.to_string(),
        "worker": f.worker.to_string(),
        "task": f.task.map(|t| t.to_string()),
        "cites": f.cites.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "created_at": f.created_at.to_rfc3339(),
        "tokens": f.tokens,
        "origin": f.origin().as_str(),
    })
}

/// The JSON of a finding in a listing: the body cut to
/// [`LISTING_BODY_CHARS`] characters, ending with [`TRUNCATED_MARKER`] when cut.
pub(crate) fn listed_json(f: &Finding, key: &str) -> Value {
    let mut v = finding_json(f, key);
    if f.body.chars().nth(LISTING_BODY_CHARS).is_some() {
        let cut: String = f.body.chars().take(LISTING_BODY_CHARS).collect();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "body".into(),
                Value::String(format!("{cut}{TRUNCATED_MARKER}")),
            );
            o.insert("truncated".into(), Value::Bool(true));
        }
    }
    v
}

/// Writes a finding. Returns it.
pub(crate) async fn put_finding(bus: &Arc<dyn Bus>, new: &NewFinding) -> OpResult<Finding> {
    let finding = new.build()?;
    bus.put_finding(&finding)
        .await
        .map_err(|e| format!("not stored: {e}"))?;
    Ok(finding)
}

/// Reads a finding; an unknown id is an error.
pub(crate) async fn get_finding(bus: &Arc<dyn Bus>, id: &str) -> OpResult<Finding> {
    let id = finding_id(id)?;
    match bus.get_finding(&id).await {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(format!(
            "no finding with id {id}; search_findings lists the ones that exist"
        )),
        Err(e) => Err(format!("finding:{id} cannot be read: {e}")),
    }
}

/// What to search.
#[derive(Debug, Default, Clone)]
pub(crate) struct Search {
    pub(crate) query: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) worker: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
}

/// One page of a search.
#[derive(Debug, Serialize)]
pub(crate) struct Page {
    /// The findings of this page, newest first, bodies cut.
    pub(crate) findings: Vec<Value>,
    /// How many findings match in all.
    pub(crate) total: usize,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_cursor: Option<String>,
    /// Stored values that could not be read, with their keys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) unreadable: Vec<String>,
}

/// Searches the findings through the bus's index: ranked by BM25 when
/// there is a query (every word must occur, in title, body or tags, after
/// Unicode word splitting and case folding), newest first without; filtered
/// by tag, session and worker; one page at a time with the index's cursor.
pub(crate) async fn search_findings(
    bus: &Arc<dyn Bus>,
    search: &Search,
    key_of: impl Fn(&FindingId) -> String,
) -> OpResult<Page> {
    let limit = search.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(format!("limit must be 1 to {MAX_PAGE}"));
    }
    let mut query = match search.query.as_deref().map(str::trim) {
        Some(q) if !q.is_empty() => SearchQuery::text(q),
        _ => SearchQuery::listing(),
    };
    if let Some(s) = search.session.as_deref().filter(|s| !s.is_empty()) {
        query = query.session(SessionId::new(s).map_err(|e| format!("session: {e}"))?);
    }
    if let Some(w) = search.worker.as_deref().filter(|s| !s.is_empty()) {
        query = query.worker(WorkerId::new(w).map_err(|e| format!("worker: {e}"))?);
    }
    if let Some(t) = search.tag.as_deref().filter(|s| !s.is_empty()) {
        query = query.tag(t);
    }
    if let Some(c) = search
        .cursor
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        query = query.after(c);
    }
    let refused = |e: swarmbus_core::Error| match e {
        swarmbus_core::Error::InvalidInput {
            field: "cursor", ..
        } => format!(
            "cursor {:?} is not one this server gave; start without a cursor",
            shorten(search.cursor.as_deref().unwrap_or_default(), 40)
        ),
        e => format!("cannot search findings: {e}"),
    };
    let page = bus
        .search_findings(&query.clone().limit(limit))
        .await
        .map_err(refused)?;
    let ids: Vec<FindingId> = page.hits.iter().map(|h| h.id.clone()).collect();
    let found = bus
        .get_findings(&ids)
        .await
        .map_err(|e| format!("cannot read findings: {e}"))?;
    let mut findings = Vec::new();
    let mut bytes = 0usize;
    let mut cut = false;
    for (hit, f) in page.hits.iter().zip(found) {
        let Some(f) = f else { continue };
        let mut v = listed_json(&f, &key_of(&f.id));
        if let (Some(score), Some(obj)) = (hit.score, v.as_object_mut()) {
            obj.insert("score".into(), json!((score * 1000.0).round() / 1000.0));
        }
        let size = v.to_string().len();
        if !findings.is_empty() && bytes.saturating_add(size) > MAX_PAGE_BYTES {
            cut = true;
            break;
        }
        bytes = bytes.saturating_add(size);
        findings.push(v);
    }
    let next_cursor = if cut {
        // The page was cut by size: the cursor after its last hit is that
        // of a page of exactly this many.
        bus.search_findings(&query.limit(findings.len()))
            .await
            .map_err(refused)?
            .next_cursor
    } else {
        page.next_cursor
    };
    Ok(Page {
        findings,
        total: usize::try_from(page.total).unwrap_or(usize::MAX),
        next_cursor,
        unreadable: Vec::new(),
    })
}

/// The status block and its JSON.
pub(crate) async fn status(bus: &Arc<dyn Bus>, config: &StatusConfig) -> OpResult<SwarmStatus> {
    SwarmStatus::snapshot(&**bus, config)
        .await
        .map_err(|e| format!("cannot read the status: {e}"))
}

/// Pushes a task to a worker's queue. Returns it.
pub(crate) async fn push_task(
    bus: &Arc<dyn Bus>,
    worker: &str,
    title: &str,
    payload: Option<Value>,
    session: Option<&str>,
    kind: Option<&str>,
) -> OpResult<Task> {
    if worker.trim().is_empty() {
        return Err("worker must not be empty: name the worker whose queue gets the task".into());
    }
    let worker = worker_id(Some(worker), DEFAULT_WORKER)?;
    if title.trim().is_empty() {
        return Err("title must not be empty: say what the worker should do".into());
    }
    if title.len() > MAX_REPORT_BYTES {
        return Err(format!(
            "title is {} bytes, over the limit of {MAX_REPORT_BYTES}: put details in the payload",
            title.len()
        ));
    }
    let payload = payload.unwrap_or(Value::Null);
    let size = payload.to_string().len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "payload is {size} bytes of JSON, over the limit of {MAX_PAYLOAD_BYTES}: store large inputs as a finding and pass its id"
        ));
    }
    let kind = kind
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .unwrap_or("task");
    let task = Task::new(session_id(session)?, kind, title.trim()).with_payload(payload);
    bus.push_task(&worker, &task)
        .await
        .map_err(|e| format!("not queued: {e}"))?;
    Ok(task)
}

/// The JSON of a task.
pub(crate) fn task_json(t: &Task) -> Value {
    json!({
        "task_id": t.id.to_string(),
        "session": t.session.to_string(),
        "kind": t.kind,
        "title": t.instructions,
        "payload": t.payload,
        "continues": t.continues.as_ref().map(ToString::to_string),
        "created_at": t.created_at.to_rfc3339(),
    })
}

/// Halts the swarm. Returns whether this call halted it and the report in
/// force.
pub(crate) async fn halt(
    bus: &Arc<dyn Bus>,
    reason: &str,
    by: &str,
) -> OpResult<(bool, HaltReport)> {
    if reason.trim().is_empty() {
        return Err("reason must not be empty: say what failed and why the swarm stops".into());
    }
    if reason.len() > MAX_REPORT_BYTES {
        return Err(format!(
            "reason is {} bytes, over the limit of {MAX_REPORT_BYTES}",
            reason.len()
        ));
    }
    let report = HaltReport::new(reason.trim(), "halted by request").by(by);
    let set = bus
        .halt(&report)
        .await
        .map_err(|e| format!("not halted: {e}"))?;
    let current = bus
        .halted()
        .await
        .map_err(|e| format!("cannot read halt:reason: {e}"))?
        .unwrap_or(report);
    Ok((set, current))
}

/// The JSON of a halt report.
pub(crate) fn halt_json(r: &HaltReport) -> Value {
    json!({
        "failed": r.failed,
        "step": r.step,
        "saved": r.saved,
        "by": r.by,
        "at": r.at_known().then(|| r.at.to_rfc3339()),
    })
}

/// Checks a librarian question.
pub(crate) fn check_question(question: &str) -> OpResult<()> {
    if question.trim().is_empty() {
        return Err("question must not be empty".into());
    }
    if question.len() > MAX_QUESTION_BYTES {
        return Err(format!(
            "question is {} bytes, over the limit of {MAX_QUESTION_BYTES}",
            question.len()
        ));
    }
    Ok(())
}

/// Parses a task id given back by an agent.
pub(crate) fn parse_task_id(id: &str) -> OpResult<TaskId> {
    task_id(id)
}

/// Parses a worker id given by an agent.
pub(crate) fn parse_worker(id: &str) -> OpResult<WorkerId> {
    if id.trim().is_empty() {
        return Err("worker must not be empty".into());
    }
    worker_id(Some(id), DEFAULT_WORKER)
}
