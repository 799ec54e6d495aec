//! `swarm librarian serve` and `swarm librarian ask`.
//!
//! Both answer from the swarm's findings: through the shard pool when
//! `GEMINI_API_KEY_SHARD<N>` keys are set, else with the offline extractive
//! provider (relevance-ranked quotes of findings, with their ids).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use swarmbus_core::bus::Bus;
use swarmbus_core::keys::{SessionId, WorkerId};
use swarmbus_core::model::{ArchiveQuery, FindingFilter, ResponseStatus};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_gemini::client::DEFAULT_MODEL;
use swarmbus_gemini::pool::shards_from_env;
use swarmbus_gemini::{
    AnswerSource, ClientConfig, Librarian, LibrarianDaemon, PoolConfig, ShardPool,
};

use crate::ctx::{Ctx, fail};

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
    /// Stop after this many seconds (default: until interrupted).
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
    #[arg(long)]
    via_bus: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The question.
    question: String,
}

/// Runs a librarian command.
pub(crate) async fn run(cmd: LibrarianCmd, ctx: &Ctx) -> ExitCode {
    let bus = match ctx.bus().await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    match cmd {
        LibrarianCmd::Serve(args) => serve(args, bus).await,
        LibrarianCmd::Ask(args) => ask(args, bus).await,
    }
}

fn source(args: &SourceArgs, bus: &Arc<dyn Bus>) -> Result<AnswerSource, String> {
    if args.offline {
        return Ok(AnswerSource::Extractive);
    }
    let shards = shards_from_env(QuotaLimits::free_tier()).map_err(|e| e.to_string())?;
    if shards.is_empty() {
        tracing::info!(
            "no GEMINI_API_KEY_SHARD<N> set: answering with the offline extractive provider"
        );
        return Ok(AnswerSource::Extractive);
    }
    let config = PoolConfig::default()
        .model(args.model.clone())
        .client(ClientConfig::from_env());
    let pool = ShardPool::new(shards, Arc::clone(bus), config).map_err(|e| e.to_string())?;
    Ok(AnswerSource::model(pool))
}

async fn serve(args: ServeArgs, bus: Arc<dyn Bus>) -> ExitCode {
    let source = match source(&args.source, &bus) {
        Ok(s) => s,
        Err(e) => return fail("librarian", e),
    };
    let daemon = LibrarianDaemon::new(bus, source);
    let stop = async move {
        match args.seconds {
            Some(s) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(s)) => {}
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

async fn ask(args: AskArgs, bus: Arc<dyn Bus>) -> ExitCode {
    let filter = match filter(&args) {
        Ok(f) => f,
        Err(e) => return fail("librarian ask", e),
    };
    if let Some(secs) = args.via_bus {
        return ask_via_bus(&args, filter, bus, Duration::from_secs(secs)).await;
    }
    let source = match source(&args.source, &bus) {
        Ok(s) => s,
        Err(e) => return fail("librarian", e),
    };
    let librarian = Librarian::new(bus, source);
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
    if let Err(e) = bus.ask(&query).await {
        return fail("librarian ask", e);
    }
    let deadline = crate::ctx::deadline_after(wait);
    loop {
        match bus.get_response(query.id).await {
            Ok(Some(r)) => {
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
                return if r.status == ResponseStatus::Ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                };
            }
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) => {
                return fail(
                    "librarian ask",
                    format!(
                        "no answer to query:archive:{} within {wait:?}; is `swarm librarian serve` running?",
                        query.id
                    ),
                );
            }
            Err(e) => return fail("librarian ask", e),
        }
    }
}
