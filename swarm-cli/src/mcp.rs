//! `swarm mcp`: the swarm as an MCP server over stdio, for Claude Code
//! (`claude mcp add swarm -- swarm mcp`) and any other MCP client.
//!
//! Every tool has a JSON schema and a description an agent can act on. Bad
//! input (an empty title, an oversized body, an unknown or invalid id,
//! arguments that do not fit the schema) is a tool error (`isError: true`)
//! with a message saying what to fix; nothing is stored and the server keeps
//! serving. stdout carries the protocol only: logs go to stderr.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
    Implementation, ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use swarmbus_agents::Librarian;
use swarmbus_core::bus::Bus;
use swarmbus_core::{ClaimedTask, FindingFilter};

use crate::ctx::{BusUse, Ctx, fail};
use crate::librarian_cmd::{TagsAnyOf, answer_source};
use crate::ops::{self, NewFinding, Search};

/// Options of `swarm mcp`.
#[derive(Debug, clap::Args)]
pub(crate) struct McpArgs {
    /// Answer `ask_librarian` with the offline extractive provider even when
    /// shard keys (`GEMINI_API_KEY_SHARD<N>`) are set.
    #[arg(long)]
    pub(crate) offline: bool,
    /// The Gemini model of the librarian.
    #[arg(long, env = "GEMINI_MODEL", default_value = swarmbus_gemini::client::DEFAULT_MODEL)]
    pub(crate) model: String,
}

/// The swarm's MCP server.
#[derive(Clone)]
pub(crate) struct SwarmMcp {
    bus: Arc<dyn Bus>,
    ctx: Arc<Ctx>,
    offline: bool,
    model: String,
    /// Claims handed out by `claim_task`, until completed or failed.
    claims: Arc<Mutex<HashMap<String, ClaimedTask>>>,
    /// This session's `resources/subscribe` subscriptions (a clone, the
    /// server of another session, starts with none).
    subscriptions: resources::Subscriptions,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for SwarmMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmMcp")
            .field("offline", &self.offline)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// `put_finding`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PutFindingArgs {
    /// One-line summary of what was found (required, at most 512 bytes).
    title: String,
    /// The finding itself: facts, numbers, file paths, sources (at most 256 KiB).
    #[serde(default)]
    body: String,
    /// Short labels other agents can filter on, e.g. ["pricing", "gemini"].
    #[serde(default)]
    tags: Vec<String>,
    /// The session this finding belongs to (default "claude-code").
    #[serde(default)]
    session: Option<String>,
    /// Who found it, e.g. "haiku-1" (default "claude-code").
    #[serde(default)]
    worker: Option<String>,
}

/// `get_finding`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct GetFindingArgs {
    /// The finding's id as put_finding or search_findings returned it
    /// (`<id>` or `finding:<id>`).
    id: String,
}

/// `search_findings`' arguments.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub(crate) struct SearchFindingsArgs {
    /// Words that must all appear (case-insensitive) in the title, body or
    /// tags; omit to list everything.
    #[serde(default)]
    query: Option<String>,
    /// Only findings with this tag.
    #[serde(default)]
    tag: Option<String>,
    /// Only findings of this session.
    #[serde(default)]
    session: Option<String>,
    /// Only findings of this worker.
    #[serde(default)]
    worker: Option<String>,
    /// Findings per page, 1 to 100 (default 20). Pages are also capped at
    /// about 24 KB; bodies over 600 characters are cut in listings.
    #[serde(default)]
    limit: Option<u32>,
    /// The next_cursor of the previous page, to read on.
    #[serde(default)]
    cursor: Option<String>,
}

/// `ask_librarian`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct AskLibrarianArgs {
    /// The question, in words.
    question: String,
    /// Only consult findings carrying at least one of these tags.
    #[serde(default)]
    tags: Vec<String>,
}

/// `push_task`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct PushTaskArgs {
    /// The worker whose queue gets the task, e.g. "haiku-1".
    worker: String,
    /// What to do, in words.
    title: String,
    /// Arguments for the worker (any JSON, at most 64 KiB).
    #[serde(default)]
    payload: Option<Value>,
    /// The session the task belongs to (default "claude-code").
    #[serde(default)]
    session: Option<String>,
}

/// `claim_task`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct ClaimTaskArgs {
    /// Your worker id: the queue to take from, e.g. "haiku-1".
    worker: String,
    /// Seconds to wait for a task when the queue is empty (0 to 60, default 0).
    #[serde(default)]
    wait_seconds: Option<u64>,
}

/// `complete_task`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct CompleteTaskArgs {
    /// The task_id claim_task returned.
    task_id: String,
    /// One-line summary of the result (stored as the task's finding).
    title: String,
    /// The result itself (at most 256 KiB).
    #[serde(default)]
    body: String,
    /// Labels for the result.
    #[serde(default)]
    tags: Vec<String>,
}

/// `fail_task`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct FailTaskArgs {
    /// The task_id claim_task returned.
    task_id: String,
    /// What went wrong, for the coordinator (the task is stopped, not retried).
    report: String,
}

/// `halt_swarm`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub(crate) struct HaltArgs {
    /// What failed and why the swarm must stop.
    reason: String,
}

fn ok_json(v: Value) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(v.to_string())]);
    r.structured_content = Some(v);
    r
}

type ToolResult = Result<CallToolResult, String>;

#[path = "mcp_findings.rs"]
mod findings_tools;
#[path = "mcp_resources.rs"]
mod resources;

#[tool_router(router = tool_router)]
impl SwarmMcp {
    /// A server on `bus`.
    pub(crate) fn new(bus: Arc<dyn Bus>, ctx: Arc<Ctx>, offline: bool, model: String) -> Self {
        Self {
            bus,
            ctx,
            offline,
            model,
            claims: Arc::default(),
            subscriptions: resources::Subscriptions::default(),
            tool_router: Self::tool_router() + Self::findings_router(),
        }
    }

    #[tool(
        name = "put_finding",
        description = "Store a finding in the swarm's shared memory so that the coordinator, other workers and the librarian can read it. Give a one-line title and the facts in the body; tag it for filtering. Returns its id and Redis key (finding:<id>)."
    )]
    async fn put_finding(&self, Parameters(a): Parameters<PutFindingArgs>) -> ToolResult {
        let new = NewFinding {
            title: a.title,
            body: a.body,
            tags: a.tags,
            session: a.session,
            worker: a.worker,
            task: None,
        };
        let f = ops::put_finding(&self.bus, &new).await?;
        Ok(ok_json(json!({
            "id": f.id.to_string(),
            "key": self.ctx.finding_key(&f.id),
            "tokens": f.tokens,
        })))
    }

    #[tool(
        name = "get_finding",
        description = "Read one finding in full by its id (as put_finding or search_findings returned it), whatever shape it was stored in."
    )]
    async fn get_finding(&self, Parameters(a): Parameters<GetFindingArgs>) -> ToolResult {
        let f = ops::get_finding(&self.bus, &a.id).await?;
        Ok(ok_json(ops::finding_json(&f, &self.ctx.finding_key(&f.id))))
    }

    #[tool(
        name = "search_findings",
        description = "Search the swarm's findings: with `query`, ranked by relevance (BM25; every word must appear in the title, body or tags, title and tags weigh more); without, newest first; filter by tag, session or worker. Paginated: pass `next_cursor` back as `cursor` for the next page. Bodies over 600 characters are cut (use get_finding for the full text)."
    )]
    async fn search_findings(&self, Parameters(a): Parameters<SearchFindingsArgs>) -> ToolResult {
        let search = Search {
            query: a.query,
            tag: a.tag,
            session: a.session,
            worker: a.worker,
            limit: a.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            cursor: a.cursor,
        };
        let ctx = Arc::clone(&self.ctx);
        let page = ops::search_findings(&self.bus, &search, |id| ctx.finding_key(id)).await?;
        let v = serde_json::to_value(&page).map_err(|e| e.to_string())?;
        Ok(ok_json(v))
    }

    #[tool(
        name = "swarm_status",
        description = "The swarm's status block (findings and tokens in shared memory, active workers, librarian shards, cost per tier, token efficiency) as text, and the same figures as JSON. Show the block at the top of each reply."
    )]
    async fn swarm_status(&self) -> ToolResult {
        let s = ops::status(&self.bus, &self.ctx.status_config()).await?;
        let v = s.to_json();
        let mut r = CallToolResult::success(vec![
            ContentBlock::text(s.render()),
            ContentBlock::text(v.to_string()),
        ]);
        r.structured_content = Some(json!({ "block": s.render(), "status": v }));
        Ok(r)
    }

    #[tool(
        name = "ask_librarian",
        description = "Ask the librarian a question over the swarm's findings instead of reading them all yourself. Returns the answer and the ids of the findings it cites (read them with get_finding). Uses the Gemini shard pool when configured, else an offline extractive answer quoting the most relevant findings."
    )]
    async fn ask_librarian(&self, Parameters(a): Parameters<AskLibrarianArgs>) -> ToolResult {
        ops::check_question(&a.question)?;
        let source = answer_source(self.offline, &self.model, &self.bus, &self.ctx)?;
        let tags: Vec<String> = a
            .tags
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let store = Arc::new(TagsAnyOf::new(Arc::clone(&self.bus), tags));
        let meter = crate::librarian_cmd::librarian_meter(&self.bus, &self.ctx)?;
        let answer = Librarian::new(store, source)
            .with_meter(meter)
            .ask(&a.question, &FindingFilter::all())
            .await
            .map_err(|e| format!("the librarian could not answer: {e}"))?;
        Ok(ok_json(json!({
            "answer": answer.answer,
            "citations": answer.citations.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "answered_by": answer.answered_by,
        })))
    }

    #[tool(
        name = "push_task",
        description = "Queue a task for a worker (worker:tasks:<worker>). The worker takes it with claim_task and answers with complete_task or fail_task. Returns the task id."
    )]
    async fn push_task(&self, Parameters(a): Parameters<PushTaskArgs>) -> ToolResult {
        let t = ops::push_task(
            &self.bus,
            &a.worker,
            &a.title,
            a.payload,
            a.session.as_deref(),
            None,
        )
        .await?;
        Ok(ok_json(
            json!({ "task_id": t.id.to_string(), "worker": a.worker.trim() }),
        ))
    }

    #[tool(
        name = "claim_task",
        description = "As a worker: take the oldest task from your queue (waiting up to wait_seconds). Returns {\"task\": null} when there is none. Finish every claimed task with complete_task (your result becomes a finding) or fail_task (a report; the task is not retried)."
    )]
    async fn claim_task(&self, Parameters(a): Parameters<ClaimTaskArgs>) -> ToolResult {
        let worker = ops::parse_worker(&a.worker)?;
        let wait = a.wait_seconds.unwrap_or(0);
        if wait > ops::MAX_CLAIM_WAIT_SECS {
            return Err(format!(
                "wait_seconds must be 0 to {}",
                ops::MAX_CLAIM_WAIT_SECS
            ));
        }
        self.bus
            .heartbeat(&worker, ops::CLAIM_HEARTBEAT)
            .await
            .map_err(|e| format!("cannot record the worker's heartbeat: {e}"))?;
        let claim = self
            .bus
            .claim_task(&worker, Duration::from_secs(wait))
            .await
            .map_err(|e| format!("cannot claim: {e}"))?;
        let Some(claim) = claim else {
            return Ok(ok_json(
                json!({ "task": null, "worker": worker.to_string() }),
            ));
        };
        let v = json!({
            "task": ops::task_json(&claim.task),
            "task_id": claim.task.id.to_string(),
            "worker": worker.to_string(),
            "deliveries": claim.deliveries,
        });
        if let Ok(mut m) = self.claims.lock() {
            m.insert(claim.task.id.to_string(), claim);
        }
        Ok(ok_json(v))
    }

    fn take_claim(&self, task_id: &str) -> Result<ClaimedTask, String> {
        let id = ops::parse_task_id(task_id)?;
        self.claims
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&id.to_string()))
            .ok_or_else(|| {
                format!(
                    "task {id} is not claimed through this server: claim it with claim_task first"
                )
            })
    }

    fn put_back(&self, claim: ClaimedTask) {
        if let Ok(mut m) = self.claims.lock() {
            m.insert(claim.task.id.to_string(), claim);
        }
    }

    #[tool(
        name = "complete_task",
        description = "As a worker: finish a task you claimed. Your result is stored as a finding tied to the task (the coordinator gathers it) and the task leaves your queue. Returns the finding's id and key."
    )]
    async fn complete_task(&self, Parameters(a): Parameters<CompleteTaskArgs>) -> ToolResult {
        let claim = self.take_claim(&a.task_id)?;
        let new = NewFinding {
            title: a.title,
            body: a.body,
            tags: a.tags,
            session: Some(claim.task.session.to_string()),
            worker: Some(claim.worker.to_string()),
            task: Some(claim.task.id),
        };
        let finding = match ops::put_finding(&self.bus, &new).await {
            Ok(f) => f,
            Err(e) => {
                self.put_back(claim);
                return Err(e);
            }
        };
        if let Err(e) = self.bus.ack_task(&claim).await {
            let msg = format!("the finding was stored but the task was not acknowledged: {e}");
            self.put_back(claim);
            return Err(msg);
        }
        Ok(ok_json(json!({
            "task_id": claim.task.id.to_string(),
            "finding_id": finding.id.to_string(),
            "key": self.ctx.finding_key(&finding.id),
        })))
    }

    #[tool(
        name = "fail_task",
        description = "As a worker: report that a task you claimed failed. The task is stopped and the report kept for the coordinator; it is never retried silently."
    )]
    async fn fail_task(&self, Parameters(a): Parameters<FailTaskArgs>) -> ToolResult {
        if a.report.trim().is_empty() {
            return Err("report must not be empty: say what failed".into());
        }
        if a.report.len() > ops::MAX_REPORT_BYTES {
            return Err(format!(
                "report is {} bytes, over the limit of {}",
                a.report.len(),
                ops::MAX_REPORT_BYTES
            ));
        }
        let claim = self.take_claim(&a.task_id)?;
        if let Err(e) = self.bus.fail_task(&claim, a.report.trim()).await {
            let msg = format!("the failure was not recorded: {e}");
            self.put_back(claim);
            return Err(msg);
        }
        Ok(ok_json(
            json!({ "task_id": claim.task.id.to_string(), "failed": true }),
        ))
    }

    #[tool(
        name = "halt_swarm",
        description = "Stop the whole swarm (writes halt:reason): every worker stops taking tasks until resume_swarm. Use it when a librarian shard fails during paper generation or a result is malformed: the first reason is kept."
    )]
    async fn halt_swarm(&self, Parameters(a): Parameters<HaltArgs>) -> ToolResult {
        let (set, report) = ops::halt(&self.bus, &a.reason, "swarm-mcp").await?;
        Ok(ok_json(json!({
            "halted": true,
            "by_this_call": set,
            "report": ops::halt_json(&report),
        })))
    }

    #[tool(
        name = "resume_swarm",
        description = "Clear the halt (the user decided to go on). Returns the halt report that was in force, if any."
    )]
    async fn resume_swarm(&self) -> ToolResult {
        let old = self
            .bus
            .clear_halt()
            .await
            .map_err(|e| format!("cannot clear halt:reason: {e}"))?;
        Ok(ok_json(json!({
            "halted": false,
            "was": old.as_ref().map(ops::halt_json),
        })))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SwarmMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new("swarm", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "The swarm's shared memory on Redis. Store what you find with put_finding, \
                 look before you work with search_findings or ask_librarian, show swarm_status \
                 at the top of each reply. Workers take tasks with claim_task and finish them \
                 with complete_task or fail_task. halt_swarm stops everyone. The findings are \
                 also resources (swarm://findings, swarm://findings/{id}): subscribe to be told \
                 of new ones.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        resources::list(&*self.bus).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&*self.bus, &self.ctx, &request.uri)
            .await
            .map(Into::into)
    }

    #[allow(deprecated)] // the protocol 2025-11-25 way, which clients speak today
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        resources::known(&request.uri)?;
        self.subscriptions
            .subscribe(&self.bus, context.peer.clone(), &request.uri)
            .await;
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions.unsubscribe(&request.uri).await;
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        resources::accepted(requested)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        resources::listen(Arc::clone(&self.bus), context).await;
        Ok(())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.clone();
        let known = self.tool_router.get(&name).is_some();
        let tcc = ToolCallContext::new(self, request, context);
        match self.tool_router.call(tcc).await {
            // Arguments that do not fit a tool's schema are the agent's to
            // fix: a tool error it can read, not a protocol error.
            Err(e) if known && e.code == ErrorCode::INVALID_PARAMS => {
                tracing::debug!(tool = %name, "bad arguments: {}", e.message);
                Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                    "bad arguments for {name}: {}",
                    e.message
                ))])
                .into())
            }
            other => other,
        }
    }
}

/// Runs the server on stdin/stdout until the client closes it.
pub(crate) async fn run(args: McpArgs, ctx: Ctx) -> ExitCode {
    // The server itself rides out any outage (it lives, reconnects by
    // itself and the session goes on), but a tool call does not wait for
    // Redis forever: after the bus's retry window (`--redis-give-up`, else
    // 5 s) the agent gets a tool error saying what to do, and can go on.
    // On Redis, keys written around the library (`redis-cli SET
    // finding:<name> …`) join the index within seconds while it serves.
    // Without Redis the server still serves (crate::lazy_bus): the tools are
    // listed and each call says what to do until Redis answers.
    let ctx = Arc::new(ctx);
    let bus: Arc<dyn Bus> = if ctx.is_memory() {
        match ctx.bus(BusUse::SERVER).await {
            Ok(b) => b,
            Err(e) => return fail("cannot open the bus", e),
        }
    } else {
        let lazy = crate::lazy_bus::LazyBus::new(Arc::clone(&ctx));
        lazy.warm().await;
        Arc::new(lazy)
    };
    let server = SwarmMcp::new(bus, ctx, args.offline, args.model);
    tracing::info!("swarm mcp: serving on stdio");
    let service = match server.serve(crate::mcp_wire::stdio()).await {
        Ok(s) => s,
        Err(e) => return fail("mcp", e),
    };
    match service.waiting().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail("mcp", e),
    }
}
