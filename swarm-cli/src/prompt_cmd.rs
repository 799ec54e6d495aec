//! `swarm prompt coordinator|worker`: a starter prompt for a Claude Code
//! session, written for this installation: the tools to use (MCP, or the CLI
//! twins with `--cli`), the tier models, and the live status block.

use std::fmt::Write as _;
use std::process::ExitCode;

use swarmbus_agents::status::SwarmStatus;

use crate::ctx::{BusUse, Ctx};

use swarmbus_cost::defaults::{COORDINATOR_MODEL, WORKER_MODEL};

/// The worker subagent `swarm init claude-code` defines
/// (`.claude/agents/swarm-worker.md`).
pub(crate) const WORKER_AGENT: &str = "swarm-worker";

/// The alias Claude Code's `Agent` tool accepts for a model id
/// (`sonnet|opus|haiku|fable`): the family named in the id, `haiku` when
/// none is.
pub(crate) fn worker_alias(model: &str) -> &'static str {
    let m = model.to_ascii_lowercase();
    ["sonnet", "opus", "fable", "haiku"]
        .into_iter()
        .find(|a| m.contains(a))
        .unwrap_or("haiku")
}

/// Which prompt.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Role {
    /// The session that plans, delegates and decides.
    Coordinator,
    /// A subagent that takes tasks and writes findings.
    Worker,
}

/// Options of `swarm prompt`.
#[derive(Debug, clap::Args)]
pub(crate) struct PromptArgs {
    /// Which prompt to print.
    role: Role,
    /// Tell the agent to use the `swarm` CLI through Bash instead of the MCP
    /// tools (for sessions without the MCP server).
    #[arg(long)]
    cli: bool,
    /// The coordinator's model.
    #[arg(long, env = "SWARM_COORDINATOR_MODEL", default_value = COORDINATOR_MODEL)]
    coordinator_model: String,
    /// The workers' model.
    #[arg(long, env = "SWARM_WORKER_MODEL", default_value = WORKER_MODEL)]
    worker_model: String,
    /// The worker id a worker prompt is written for.
    #[arg(long, default_value = "haiku-1")]
    worker: String,
    /// The session findings are filed under.
    #[arg(long, env = "SWARM_SESSION", default_value = "claude-code")]
    session: String,
}

/// Prints the prompt. The status block is read live; when Redis does not
/// answer the prompt says so instead (and the command still succeeds, so the
/// prompt can be prepared before Redis runs).
pub(crate) async fn run(args: PromptArgs, ctx: &Ctx) -> ExitCode {
    let status = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(bus) => match SwarmStatus::snapshot(&*bus, &ctx.status_config()).await {
            Ok(s) => s.render(),
            Err(e) => format!("(status unavailable: {e})\n"),
        },
        Err(e) => {
            eprintln!("swarm: prompt: {e}");
            format!(
                "(Redis does not answer at {}: start it before the session)\n",
                ctx.shown_url()
            )
        }
    };
    let text = match args.role {
        Role::Coordinator => coordinator(&args, &status, &ctx.shown_url()),
        Role::Worker => worker(&args, &ctx.shown_url()),
    };
    print!("{text}");
    ExitCode::SUCCESS
}

struct Tools {
    status: &'static str,
    search: &'static str,
    get: &'static str,
    put: &'static str,
    ask: &'static str,
    push: &'static str,
    halt: &'static str,
    resume: &'static str,
}

const MCP: Tools = Tools {
    status: "the swarm_status tool",
    search: "search_findings (query, tag, session, worker; paginated)",
    get: "get_finding (id)",
    put: "put_finding (title, body, tags, session, worker)",
    ask: "ask_librarian (question, tags)",
    push: "push_task (worker, title, payload)",
    halt: "halt_swarm (reason)",
    resume: "resume_swarm",
};

const CLI: Tools = Tools {
    status: "`swarm status`",
    search: "`swarm findings list --query WORDS [--tag T] [--cursor C]`",
    get: "`swarm findings show ID`",
    put: "`swarm findings put --title TITLE --tag T --body TEXT` (or the body on stdin)",
    ask: "`swarm librarian ask \"QUESTION\" [--tag T]`",
    push: "`swarm task push --worker ID --title TEXT [--payload JSON]`",
    halt: "`swarm halt --reason TEXT`",
    resume: "`swarm resume`",
};

fn coordinator(a: &PromptArgs, status: &str, url: &str) -> String {
    let t = if a.cli { &CLI } else { &MCP };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "You coordinate a swarm of Claude Code agents that share their findings through Redis."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "WHO DOES WHAT");
    let _ = writeln!(
        s,
        "- You ({}): plan, decide, and reason about hard questions. Nothing else.",
        a.coordinator_model
    );
    let _ = writeln!(
        s,
        "- Subagents ({}): all the legwork: reading and searching files, git, running commands and tests, transforming data. Start each with the Agent tool, subagent_type \"{}\" and model \"{}\" (Claude Code's alias; never a full model id, and the tool is Agent, not Task); start independent tasks together in one message so they run in parallel.",
        a.worker_model,
        WORKER_AGENT,
        worker_alias(&a.worker_model)
    );
    let _ = writeln!(
        s,
        "- The librarian: answers questions over everything the swarm has found, so you do not read it all yourself."
    );
    let _ = writeln!(s, "- The bus: Redis at {url}, session \"{}\".", a.session);
    let _ = writeln!(s);
    let _ = writeln!(s, "RULES");
    let _ = writeln!(
        s,
        "1. Delegate by default. Keep a task for yourself only when it needs strategy, architecture, or a judgement between unclear requirements. Do not read large files yourself."
    );
    let _ = writeln!(
        s,
        "2. Every subagent you start must store each result as a finding with {} and tell you the finding ids. Put this in its instructions, with the worker name it should use (haiku-1, haiku-2, …).",
        t.put
    );
    let _ = writeln!(
        s,
        "3. Before starting work, look for what is known: {} or {}. Read details with {}.",
        t.search, t.ask, t.get
    );
    let _ = writeln!(
        s,
        "4. Queue follow-up work for a named worker with {}.",
        t.push
    );
    let _ = writeln!(
        s,
        "5. Failures stop work, they are not retried silently. If a subagent fails, stop that line of work and report it. If a librarian answer is malformed or a shard fails while writing a paper: {} with what failed and at which step, then return to the user, who decides whether to retry, skip or pause; {} continues after that.",
        t.halt, t.resume
    );
    let _ = writeln!(
        s,
        "6. When the swarm holds more than 5,000 findings, pause and ask a subagent to summarise them before going on."
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "AT THE TOP OF EVERY REPLY show the status block from {}. It looks like this now:",
        t.status
    );
    let _ = writeln!(s);
    for line in status.lines() {
        let _ = writeln!(s, "  {line}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "FIRST STEPS");
    let _ = writeln!(
        s,
        "1. Read the status ({}). If it fails, Redis is down: tell the user and stop.",
        t.status
    );
    let _ = writeln!(
        s,
        "2. Ask the librarian what the swarm already knows about the task."
    );
    let _ = writeln!(
        s,
        "3. Split the work, start the subagents, gather their finding ids, and answer from the findings."
    );
    s
}

fn worker(a: &PromptArgs, url: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "You are worker \"{}\" ({}) in a swarm that shares findings through Redis at {url}.",
        a.worker, a.worker_model
    );
    let _ = writeln!(s);
    if a.cli {
        let _ = writeln!(s, "Use the `swarm` command through Bash:");
        let _ = writeln!(
            s,
            "- Before you work, check what is known: `swarm findings list --query WORDS` and `swarm findings show ID`."
        );
        let _ = writeln!(
            s,
            "- Store each result: `swarm findings put --title TITLE --tag TAG --worker {} --session {} --body TEXT` (or pipe the body on stdin). It prints the finding's key.",
            a.worker, a.session
        );
        let _ = writeln!(
            s,
            "- If the work cannot be done, say so plainly and stop; for a failure that must stop everyone: `swarm halt --reason TEXT`."
        );
    } else {
        let _ = writeln!(s, "Use the swarm MCP tools:");
        let _ = writeln!(
            s,
            "- Before you work, check what is known: search_findings and get_finding."
        );
        let _ = writeln!(
            s,
            "- Store each result with put_finding (title, body, tags, worker \"{}\", session \"{}\"). It returns the finding's id.",
            a.worker, a.session
        );
        let _ = writeln!(
            s,
            "- When you were given a queue instead of a task: claim_task (worker \"{}\"), do it, then complete_task with your result, or fail_task with what went wrong. Repeat until claim_task returns no task.",
            a.worker
        );
        let _ = writeln!(
            s,
            "- For a failure that must stop everyone: halt_swarm (reason)."
        );
    }
    let _ = writeln!(
        s,
        "Keep findings factual and short: numbers, paths, commands and sources. Never retry a failed step silently: report it."
    );
    let _ = writeln!(s, "End your reply with the ids of the findings you stored.");
    s
}
