//! `swarm hook <EVENT>`: what Claude Code's hooks run (`swarm init
//! claude-code` writes them into `.claude/settings.json`). Each reads the
//! hook payload on stdin:
//!
//! - `SubagentStart`: beats `worker:status:<agent id>` with the bus's
//!   default TTL and records the subagent's tier (from its definition
//!   `.claude/agents/<type>.md`, else the model the `Agent` call asked for).
//! - `PreToolUse` / `PostToolUse` inside a subagent: beat again (a long
//!   subagent stays alive). `PreToolUse` on `Agent`: the budget; once a cap
//!   of `swarm budget` is reached the call is refused (exit 2, the reason on
//!   stderr, which Claude Code shows the model).
//! - `SubagentStop`: books the subagent's transcript, ends its beat.
//! - `Stop` / `SessionEnd`: books the session's transcript and its
//!   subagents' (each call once, whoever reads it first).
//! - `SessionStart` / `UserPromptSubmit`: prints the spend so far, which
//!   Claude Code adds to the coordinator's context.
//!
//! A hook never stops Claude Code by accident: a payload it cannot read or a
//! bus that does not answer is said on stderr with exit 1 (Claude Code shows
//! it and goes on); only the budget refusal exits 2.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use swarmbus_claude_code::{CallUsage, HookPayload, transcript};
use swarmbus_core::BusLimits;
use swarmbus_core::bus::Bus;
use swarmbus_core::keys::WorkerId;
use swarmbus_cost::Money;

use crate::budget_cmd::{self, Caps};
use crate::cc_book::{Booked, Booker, safe_name};
use crate::ctx::{BusUse, Ctx};

/// Options of `swarm hook`.
#[derive(Debug, clap::Args)]
pub(crate) struct HookArgs {
    /// The hook event (`SubagentStart`, `SubagentStop`, `PreToolUse`,
    /// `PostToolUse`, `Stop`, `SessionEnd`, `SessionStart`, `UserPromptSubmit`).
    event: String,
}

/// Runs one hook.
pub(crate) async fn run(args: HookArgs, ctx: &Ctx) -> ExitCode {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().take(4 << 20).read_to_string(&mut text) {
        eprintln!("swarm hook {}: cannot read the payload: {e}", args.event);
        return ExitCode::FAILURE;
    }
    let payload = match HookPayload::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("swarm hook {}: {e}", args.event);
            return ExitCode::FAILURE;
        }
    };
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "swarm hook {}: {e}; this call is not booked now (a later Stop hook books it)",
                args.event
            );
            return ExitCode::FAILURE;
        }
    };
    match handle(&args.event, &payload, bus, ctx).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Refuse(reason)) => {
            eprintln!("{reason}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("swarm hook {}: {e}", args.event);
            ExitCode::FAILURE
        }
    }
}

enum Outcome {
    Done,
    Refuse(String),
}

fn worker_id(agent: &str) -> Result<WorkerId, String> {
    WorkerId::new(agent).map_err(|e| e.to_string())
}

async fn beat(bus: &Arc<dyn Bus>, agent: &str) -> Result<(), String> {
    bus.heartbeat(&worker_id(agent)?, BusLimits::default().heartbeat_ttl)
        .await
        .map_err(|e| e.to_string())
}

async fn handle(
    event: &str,
    p: &HookPayload,
    bus: Arc<dyn Bus>,
    ctx: &Ctx,
) -> Result<Outcome, String> {
    match event {
        "SubagentStart" => {
            let agent = p
                .agent_id
                .as_deref()
                .ok_or("SubagentStart without agent_id")?;
            beat(&bus, agent).await?;
            let model = p
                .agent_type
                .as_deref()
                .and_then(|t| definition_model(p.cwd.as_deref(), t));
            let pending = match &p.session_id {
                Some(s) => bus
                    .load_draft(&safe_name("cc-pending-model-", s))
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            let record = serde_json::json!({
                "agent_id": agent,
                "agent_type": p.agent_type,
                "model": model.or(pending),
                "tier": ctx.tiers().worker.name.to_string(),
            });
            bus.save_draft(&safe_name("cc-agent-", agent), &record.to_string())
                .await
                .map_err(|e| e.to_string())?;
            Ok(Outcome::Done)
        }
        "PreToolUse" | "PostToolUse" => {
            if let Some(agent) = p.agent_id.as_deref() {
                beat(&bus, agent).await?;
            }
            if event == "PreToolUse"
                && let Some((model, _)) = p.subagent_request()
            {
                if let (Some(m), Some(s)) = (model, &p.session_id) {
                    let _ = bus.save_draft(&safe_name("cc-pending-model-", s), m).await;
                }
                return budget_check(p, bus, ctx).await;
            }
            Ok(Outcome::Done)
        }
        "SubagentStop" => {
            let booker = Booker::new(Arc::clone(&bus), ctx)?;
            let mut booked = Booked::default();
            if let Some(path) = p.agent_transcript_path.as_deref() {
                booked.merge(book_file(&booker, Path::new(path), p.agent_type.as_deref()).await?);
            }
            booked.warn();
            if let Some(agent) = p.agent_id.as_deref() {
                bus.deregister(&worker_id(agent)?)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(Outcome::Done)
        }
        "Stop" | "SessionEnd" => {
            let booker = Booker::new(Arc::clone(&bus), ctx)?;
            let booked = book_session(&booker, p).await?;
            booked.warn();
            Ok(Outcome::Done)
        }
        "SessionStart" | "UserPromptSubmit" => {
            let booker = Booker::new(Arc::clone(&bus), ctx)?;
            let (session, total) = booker.spent(p.session_id.as_deref()).await?;
            let caps = budget_cmd::load(&bus).await.unwrap_or_default();
            println!(
                "Swarm spend so far: this session ${session}, all sessions ${total}{}",
                caps.describe()
            );
            Ok(Outcome::Done)
        }
        _ => Ok(Outcome::Done),
    }
}

/// The `model:` of a subagent definition `.claude/agents/<type>.md`.
fn definition_model(cwd: Option<&str>, agent_type: &str) -> Option<String> {
    if agent_type.contains(['/', '\\', '.']) {
        return None;
    }
    let path = Path::new(cwd?)
        .join(".claude/agents")
        .join(format!("{agent_type}.md"));
    let text = std::fs::read_to_string(path).ok()?;
    let front = text.strip_prefix("---")?.split("\n---").next()?;
    front.lines().find_map(|l| {
        l.trim()
            .strip_prefix("model:")
            .map(|m| m.trim().trim_matches('"').to_owned())
    })
}

/// Books one transcript file.
pub(crate) async fn book_file(
    booker: &Booker,
    path: &Path,
    agent_type: Option<&str>,
) -> Result<Booked, String> {
    let calls = read_calls(path, agent_type)?;
    booker.book(&calls).await
}

fn read_calls(path: &Path, agent_type: Option<&str>) -> Result<Vec<CallUsage>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the transcript {}: {e}", path.display()))?;
    let agent_type = agent_type.map(str::to_owned).or_else(|| {
        std::fs::read_to_string(transcript::meta_path(path))
            .ok()
            .and_then(|m| transcript::AgentMeta::parse(&m))
            .and_then(|m| m.agent_type)
    });
    Ok(transcript::parse(&text, agent_type.as_deref()).calls)
}

/// The subagent transcripts of a session (`<session>/subagents/*.jsonl`).
fn subagent_files(main: &Path) -> Vec<PathBuf> {
    let dir = main.with_extension("").join("subagents");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    out.sort();
    out
}

/// Books the main transcript and every subagent transcript of the session.
async fn book_session(booker: &Booker, p: &HookPayload) -> Result<Booked, String> {
    let mut booked = Booked::default();
    let Some(main) = p.transcript_path.as_deref().map(Path::new) else {
        return Err("no transcript_path in the payload".to_owned());
    };
    for sub in subagent_files(main) {
        booked.merge(book_file(booker, &sub, None).await?);
    }
    if main.exists() {
        booked.merge(book_file(booker, main, None).await?);
    }
    Ok(booked)
}

/// Refuses a new subagent once booked spend plus the price of calls not
/// booked yet (what is still running) reaches a cap.
async fn budget_check(p: &HookPayload, bus: Arc<dyn Bus>, ctx: &Ctx) -> Result<Outcome, String> {
    let caps = budget_cmd::load(&bus).await?;
    if caps == Caps::default() {
        return Ok(Outcome::Done);
    }
    let booker = Booker::new(Arc::clone(&bus), ctx)?;
    let (mut session, mut total) = booker.spent(p.session_id.as_deref()).await?;
    let mut running = Money::ZERO;
    if let Some(main) = p.transcript_path.as_deref().map(Path::new) {
        let mut files = subagent_files(main);
        files.push(main.to_path_buf());
        for f in files {
            for c in read_calls(&f, None).unwrap_or_default() {
                if !booker.is_booked(&c).await? {
                    running += booker.price(&c).unwrap_or(Money::ZERO);
                }
            }
        }
    }
    session += running;
    total += running;
    for (what, spent, cap) in [
        ("this session", session, caps.session),
        ("all sessions", total, caps.total),
    ] {
        if let Some(cap) = cap
            && spent >= cap
        {
            return Ok(Outcome::Refuse(format!(
                "swarm budget reached: {what} has spent ${spent} (booked and running) of its ${cap} cap. \
                 Do not start another subagent: finish with the findings you have and tell the user \
                 (`swarm budget show`; raise it with `swarm budget set`)."
            )));
        }
    }
    Ok(Outcome::Done)
}
