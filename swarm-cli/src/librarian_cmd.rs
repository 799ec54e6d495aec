//! `swarm librarian serve` and `swarm librarian ask`.
//!
//! Both answer from the swarm's findings: through the shard pool when
//! `GEMINI_API_KEY_SHARD<N>` keys are set, else with the offline extractive
//! provider (relevance-ranked quotes of findings, with their ids).
//!
//! The pool's failovers (a call moving on from a shard that could not serve)
//! are added to the bus counter [`FAILOVERS_COUNTER`] after each call, so
//! `swarm serve`'s `/metrics` shows every librarian node's failovers.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use swarmbus_agents::librarian::ask::ask as ask_librarian;
use swarmbus_agents::{AnswerSource, AskError, Librarian, LibrarianDaemon};
use swarmbus_core::bus::{Bus, FindingStore, Stored};
use swarmbus_core::keys::{CounterName, FindingId, SessionId, WorkerId};
use swarmbus_core::llm::{Completion, CompletionRequest, LanguageModel};
use swarmbus_core::{ArchiveQuery, Finding, FindingFilter, Listing, ResponseStatus};
use swarmbus_gemini::ShardPool;
use swarmbus_gemini::client::DEFAULT_MODEL;

use crate::ctx::{BusUse, Ctx, fail};

/// Librarian commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LibrarianCmd {
    /// Answer archive queries from `channel:queries` until interrupted.
    Serve(ServeArgs),
    /// Ask one question over the findings and print the answer with its citations.
    Ask(AskArgs),
}

/// Who answers.
#[derive(Debug, clap::Args)]
pub(crate) struct SourceArgs {
    /// Use the offline extractive provider even when shard keys are set.
    #[arg(long)]
    offline: bool,
    /// The Gemini model.
    #[arg(long, env = "GEMINI_MODEL", default_value = DEFAULT_MODEL)]
    model: String,
}

/// `swarm librarian serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Stop after this many seconds (default: until interrupted; a wait too
    /// long for the clock means until interrupted).
    #[arg(long)]
    seconds: Option<u64>,
}

/// `swarm librarian ask`.
#[derive(Debug, clap::Args)]
pub(crate) struct AskArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Only findings of this session.
    #[arg(long)]
    session: Option<String>,
    /// Only findings of this worker.
    #[arg(long)]
    worker: Option<String>,
    /// Only findings with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Send the question to a running `swarm librarian serve` through the bus
    /// and wait this many seconds for its answer, instead of answering here.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    via_bus: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The question.
    question: String,
}

/// Runs a librarian command.
pub(crate) async fn run(cmd: LibrarianCmd, ctx: &Ctx) -> ExitCode {
    // The daemon rides out Redis outages and adopts raw finding keys while
    // it runs; `ask` is one-shot.
    let use_ = match cmd {
        LibrarianCmd::Serve(_) => BusUse::DAEMON,
        LibrarianCmd::Ask(_) => BusUse::ONE_SHOT,
    };
    let bus = match ctx.bus(use_).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    match cmd {
        LibrarianCmd::Serve(args) => serve(args, bus, ctx).await,
        LibrarianCmd::Ask(args) => ask(args, bus, ctx).await,
    }
}

fn source(args: &SourceArgs, bus: &Arc<dyn Bus>, ctx: &Ctx) -> Result<AnswerSource, String> {
    answer_source(args.offline, &args.model, bus, ctx)
}

/// Who answers: the shard pool when `GEMINI_API_KEY_SHARD<N>` keys are set
/// (and not `offline`), else the offline extractive provider.
pub(crate) fn answer_source(
    offline: bool,
    model: &str,
    bus: &Arc<dyn Bus>,
    ctx: &Ctx,
) -> Result<AnswerSource, String> {
    if offline {
        return Ok(AnswerSource::Extractive);
    }
    let shards = ctx.gemini_shards().map_err(|e| e.to_string())?;
    if shards.is_empty() {
        tracing::info!(
            "no GEMINI_API_KEY_SHARD<N> set: answering with the offline extractive provider"
        );
        return Ok(AnswerSource::Extractive);
    }
    // A retired librarian model stops here, naming its replacement; the
    // pool also checks every call against the table.
    let table = ctx.prices()?;
    ctx.check_models(&table, &[("the librarian model (--model)", model)])?;
    let pool = ctx
        .shard_pool(shards, model, Arc::clone(bus), Some(table))
        .map_err(|e| e.to_string())?;
    Ok(AnswerSource::model(CountingFailovers {
        pool,
        bus: Arc::clone(bus),
        reported: AtomicU64::new(0),
    }))
}

/// The bus counter (`swarm:counter:librarian-failovers`) of the shard pools'
/// failovers, summed over every librarian process.
pub(crate) const FAILOVERS_COUNTER: &str = "librarian-failovers";

/// The shard pool as the librarian's model, adding its failovers to the bus
/// counter after each call (each failover once, however calls interleave).
struct CountingFailovers {
    pool: ShardPool<dyn Bus>,
    bus: Arc<dyn Bus>,
    /// The pool's count already added to the bus.
    reported: AtomicU64,
}

impl CountingFailovers {
    async fn report(&self) {
        let now = self.pool.failovers();
        let before = self.reported.swap(now, Ordering::AcqRel);
        let delta = now.saturating_sub(before);
        if delta == 0 {
            return;
        }
        let added = match CounterName::new(FAILOVERS_COUNTER) {
            Ok(name) => self
                .bus
                .counter_add(&name, i64::try_from(delta).unwrap_or(i64::MAX))
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = added {
            // Not lost for good: given back, so the next call adds it.
            self.reported.fetch_sub(delta, Ordering::AcqRel);
            tracing::warn!(error = %e, "could not count the librarian's failovers on the bus");
        }
    }
}

#[async_trait::async_trait]
impl LanguageModel for CountingFailovers {
    fn model_id(&self) -> &str {
        self.pool.model_id()
    }

    fn provider_name(&self) -> &str {
        self.pool.provider_name()
    }

    async fn complete(&self, request: CompletionRequest) -> swarmbus_core::Result<Completion> {
        let answer = self.pool.complete(request).await;
        self.report().await;
        answer
    }
}

/// The bus's findings seen through a tag filter: only those carrying at least
/// one of the tags are listed (all when there are none). Lets the librarian
/// consult findings of several tags at once.
#[derive(Clone)]
pub(crate) struct TagsAnyOf {
    bus: Arc<dyn Bus>,
    tags: Vec<String>,
}

impl std::fmt::Debug for TagsAnyOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagsAnyOf")
            .field("tags", &self.tags)
            .finish()
    }
}

impl TagsAnyOf {
    /// Findings of `bus` with any of `tags`.
    pub(crate) fn new(bus: Arc<dyn Bus>, tags: Vec<String>) -> Self {
        Self { bus, tags }
    }
}

#[async_trait::async_trait]
impl FindingStore for TagsAnyOf {
    async fn put_finding(&self, finding: &Finding) -> swarmbus_core::Result<Stored> {
        self.bus.put_finding(finding).await
    }

    async fn put_findings(&self, findings: &[Finding]) -> swarmbus_core::Result<usize> {
        self.bus.put_findings(findings).await
    }

    async fn get_finding(&self, id: &FindingId) -> swarmbus_core::Result<Option<Finding>> {
        self.bus.get_finding(id).await
    }

    async fn get_findings(&self, ids: &[FindingId]) -> swarmbus_core::Result<Vec<Option<Finding>>> {
        self.bus.get_findings(ids).await
    }

    async fn list_findings(&self, filter: &FindingFilter) -> swarmbus_core::Result<Listing> {
        let mut listing = self.bus.list_findings(filter).await?;
        if !self.tags.is_empty() {
            listing
                .findings
                .retain(|f| self.tags.iter().any(|t| f.tags.contains(t)));
        }
        Ok(listing)
    }

    async fn count_findings(&self) -> swarmbus_core::Result<u64> {
        self.bus.count_findings().await
    }

    async fn archive_findings(&self, ids: &[FindingId]) -> swarmbus_core::Result<u64> {
        self.bus.archive_findings(ids).await
    }
}

/// The librarian's calls are booked under this worker id.
const LIBRARIAN_ID: &str = "librarian";

fn librarian_id() -> Option<WorkerId> {
    WorkerId::new(LIBRARIAN_ID).ok()
}

/// The meter of the librarian's calls: the context's accountant on `bus`
/// (its prices and tiers, no budget of its own).
pub(crate) fn librarian_meter(
    bus: &Arc<dyn Bus>,
    ctx: &Ctx,
) -> Result<Arc<dyn swarmbus_core::Meter>, String> {
    let accountant = ctx.accountant(
        Arc::clone(bus),
        ctx.prices()?,
        swarmbus_cost::BudgetLimits::unlimited(),
    )?;
    Ok(Arc::new(accountant))
}

async fn serve(args: ServeArgs, bus: Arc<dyn Bus>, ctx: &Ctx) -> ExitCode {
    // The bus was opened as a daemon's: on Redis, keys written around the
    // library join the index within seconds while the daemon runs.
    let source = match source(&args.source, &bus, ctx) {
        Ok(s) => s,
        Err(e) => return fail("librarian", e),
    };
    let meter = match librarian_meter(&bus, ctx) {
        Ok(m) => m,
        Err(e) => return fail("accountant", e),
    };
    let mut daemon = LibrarianDaemon::new(bus, source);
    if let Some(id) = librarian_id() {
        daemon = daemon.with_meter(meter, id);
    }
    let stop = async move {
        match args.seconds {
            Some(s) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(crate::ctx::deadline_after(Duration::from_secs(s))) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    match daemon.run(stop).await {
        Ok(stats) => {
            eprintln!("librarian stopped: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(e) => fail("librarian serve", e),
    }
}

fn filter(args: &AskArgs) -> swarmbus_core::Result<FindingFilter> {
    let mut f = FindingFilter::all();
    if let Some(s) = &args.session {
        f = f.session(SessionId::new(s.clone())?);
    }
    if let Some(w) = &args.worker {
        f = f.worker(WorkerId::new(w.clone())?);
    }
    if let Some(t) = &args.tag {
        f = f.tag(t.clone());
    }
    Ok(f)
}

async fn ask(args: AskArgs, bus: Arc<dyn Bus>, ctx: &Ctx) -> ExitCode {
    let filter = match filter(&args) {
        Ok(f) => f,
        Err(e) => return fail("librarian ask", e),
    };
    if let Some(secs) = args.via_bus {
        return ask_via_bus(&args, filter, bus, Duration::from_secs(secs)).await;
    }
    let source = match source(&args.source, &bus, ctx) {
        Ok(s) => s,
        Err(e) => return fail("librarian", e),
    };
    let meter = match librarian_meter(&bus, ctx) {
        Ok(m) => m,
        Err(e) => return fail("accountant", e),
    };
    let mut librarian = Librarian::new(bus, source).with_meter(meter);
    if let Some(id) = librarian_id() {
        librarian = librarian.with_caller(id);
    }
    match librarian.ask(&args.question, &filter).await {
        Ok(a) if args.json => {
            let cites: Vec<String> = a.citations.iter().map(ToString::to_string).collect();
            println!(
                "{}",
                serde_json::json!({"answer": a.answer, "citations": cites, "answered_by": a.answered_by})
            );
            ExitCode::SUCCESS
        }
        Ok(a) => {
            println!("{}", a.answer);
            for c in &a.citations {
                println!("  cites finding:{c}");
            }
            println!("(answered by {})", a.answered_by);
            ExitCode::SUCCESS
        }
        Err(e) => fail("librarian ask", e),
    }
}

async fn ask_via_bus(
    args: &AskArgs,
    filter: FindingFilter,
    bus: Arc<dyn Bus>,
    wait: Duration,
) -> ExitCode {
    let query = ArchiveQuery::new(args.question.clone(), filter).asked_by("swarm-cli");
    let r = match ask_librarian(&*bus, &query, wait).await {
        Ok(r) => r,
        Err(AskError::Bus { source, .. }) => return fail("librarian ask", source),
        Err(e) => {
            return fail(
                "librarian ask",
                format!("{e}; is `swarm librarian serve` running?"),
            );
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else if let Some(a) = &r.answer {
        println!("{a}");
        for c in &r.citations {
            println!("  cites finding:{c}");
        }
    } else if let Some(e) = &r.error {
        eprintln!(
            "swarm: librarian answered with an error: {}: {}",
            e.kind, e.message
        );
    }
    if r.status == ResponseStatus::Ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
