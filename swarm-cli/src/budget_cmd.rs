//! `swarm budget set|show|clear`: caps on what Claude Code may spend, one
//! per session and one over everything, kept on the bus (draft
//! `cc-budget`). The `PreToolUse` hook on `Agent` refuses a new subagent
//! once booked spend plus the calls still running reaches a cap.

use std::process::ExitCode;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use swarmbus_core::bus::Bus;
use swarmbus_cost::Money;

use crate::ctx::{BusUse, Ctx, fail};

const DRAFT: &str = "cc-budget";

/// The caps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Caps {
    /// Per Claude Code session (its tree of subagents included).
    pub(crate) session: Option<Money>,
    /// Over every session.
    pub(crate) total: Option<Money>,
}

impl Caps {
    /// `"; caps: session $X, total $Y"`, or nothing without caps.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.session {
            parts.push(format!("session ${s}"));
        }
        if let Some(t) = self.total {
            parts.push(format!("total ${t}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("; caps: {}", parts.join(", "))
        }
    }
}

/// Reads the caps (none set: no caps).
pub(crate) async fn load(bus: &Arc<dyn Bus>) -> Result<Caps, String> {
    match bus.load_draft(DRAFT).await.map_err(|e| e.to_string())? {
        None => Ok(Caps::default()),
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            format!(
                "the budget on the bus does not decode ({e}); `swarm budget clear` and set it again"
            )
        }),
    }
}

/// `swarm budget`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BudgetCmd {
    /// Set caps in US dollars (`--session 0.50 --total 20`).
    Set {
        /// The cap of one Claude Code session.
        #[arg(long)]
        session: Option<String>,
        /// The cap over every session.
        #[arg(long)]
        total: Option<String>,
    },
    /// Show the caps.
    Show,
    /// Remove every cap.
    Clear,
}

fn money(s: &str) -> Result<Money, String> {
    let m = Money::parse(s.trim_start_matches('$')).map_err(|e| format!("{s}: {e}"))?;
    if m <= Money::ZERO {
        return Err(format!("{s}: a cap must be more than $0"));
    }
    Ok(m)
}

/// Runs `swarm budget`.
pub(crate) async fn run(cmd: BudgetCmd, ctx: &Ctx) -> ExitCode {
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    match cmd {
        BudgetCmd::Set { session, total } => {
            if session.is_none() && total.is_none() {
                return fail("budget set", "give --session and/or --total");
            }
            let mut caps: Caps = load(&bus).await.unwrap_or_default();
            for (arg, slot) in [(session, &mut caps.session), (total, &mut caps.total)] {
                if let Some(a) = arg {
                    match money(&a) {
                        Ok(m) => *slot = Some(m),
                        Err(e) => return fail("budget set", e),
                    }
                }
            }
            let json = match serde_json::to_string(&caps) {
                Ok(j) => j,
                Err(e) => return fail("budget set", e),
            };
            if let Err(e) = bus.save_draft(DRAFT, &json).await {
                return fail("budget set", e);
            }
            println!("budget{}", caps.describe().trim_start_matches(';'));
            ExitCode::SUCCESS
        }
        BudgetCmd::Show => match load(&bus).await {
            Ok(c) if c == Caps::default() => {
                println!("no budget set");
                ExitCode::SUCCESS
            }
            Ok(c) => {
                println!("budget{}", c.describe().trim_start_matches(';'));
                ExitCode::SUCCESS
            }
            Err(e) => fail("budget show", e),
        },
        BudgetCmd::Clear => {
            let json = match serde_json::to_string(&Caps::default()) {
                Ok(j) => j,
                Err(e) => return fail("budget clear", e),
            };
            match bus.save_draft(DRAFT, &json).await {
                Ok(()) => {
                    println!("budget cleared");
                    ExitCode::SUCCESS
                }
                Err(e) => fail("budget clear", e),
            }
        }
    }
}
