//! `swarm status` and `swarm monitor`.
//!
//! `status --watch` rides out an outage of Redis: a snapshot that fails is
//! drawn as `unavailable: <error>` and the next tick tries again.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::keys::{Channel, ShardId, TierName};
use swarmbus_cost::Tiers;

use crate::ctx::{BusUse, Ctx, fail};

/// Options of `swarm status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print JSON instead of the status block.
    #[arg(long)]
    json: bool,
    /// Redraw the status every `--interval` seconds until interrupted (in
    /// place on a terminal; one snapshot after another when piped).
    #[arg(long)]
    watch: bool,
    /// Seconds between redraws with `--watch` (1 to 3600).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    interval: u64,
    /// With `--watch`: stop after this many snapshots (1 to 1000000; default:
    /// until interrupted).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    count: Option<u64>,
    /// How many shards the Librarians line lists (1 to 100).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    shards: u32,
    /// The coordinator tier's name (default: `--coordinator-tier`).
    #[arg(long)]
    coordinator: Option<String>,
    /// The worker tier's name (default: `--worker-tier`).
    #[arg(long)]
    worker: Option<String>,
    /// The librarian tier's name (default: `--librarian-tier`).
    #[arg(long)]
    librarian: Option<String>,
}

impl StatusArgs {
    /// The status settings: these options over the tier names of `tiers`
    /// (the context's).
    pub(crate) fn config(&self, tiers: &Tiers) -> swarmbus_core::Result<StatusConfig> {
        let shards = (1..=self.shards)
            .map(ShardId::new)
            .collect::<swarmbus_core::Result<Vec<_>>>()?;
        let name = |given: &Option<String>, tier: &TierName| match given {
            Some(n) => TierName::new(n.clone()),
            None => Ok(tier.clone()),
        };
        Ok(StatusConfig::default()
            .tiers(
                name(&self.coordinator, &tiers.coordinator.name)?,
                name(&self.worker, &tiers.worker.name)?,
                name(&self.librarian, &tiers.librarian.name)?,
            )
            .shards(shards))
    }
}

/// Prints the status (once, or again and again with `--watch`).
pub(crate) async fn run(args: StatusArgs, ctx: &Ctx) -> ExitCode {
    let config = match args.config(ctx.tiers()) {
        Ok(c) => c,
        Err(e) => return fail("status", e),
    };
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    let terminal = std::io::stdout().is_terminal();
    let mut shown: u64 = 0;
    loop {
        let text = match SwarmStatus::snapshot(&*bus, &config).await {
            Ok(s) if args.json => format!("{}\n", s.to_json()),
            Ok(s) => s.render(),
            // Watching rides out an outage: the block says what failed and
            // is drawn again at the next tick, until Ctrl-C.
            Err(e) if args.watch && args.json => {
                format!(
                    "{}\n",
                    serde_json::json!({"unavailable": true, "errors": [{"key": null, "why": e.to_string()}]})
                )
            }
            Err(e) if args.watch => {
                format!("📊 SWARM STATUS\nunavailable: {e}\n(retrying)\n")
            }
            Err(e) => return fail("status", e),
        };
        let mut out = std::io::stdout().lock();
        let written = if args.watch && terminal {
            // Home, clear to the end of the screen, then the block.
            write!(
                out,
                "\x1b[H\x1b[J{text}\n(every {}s; Ctrl-C to stop)\n",
                args.interval
            )
        } else if args.watch && shown > 0 {
            write!(out, "\n{text}")
        } else {
            write!(out, "{text}")
        };
        if written.and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): nothing more to show.
            return ExitCode::SUCCESS;
        }
        drop(out);
        shown = shown.saturating_add(1);
        if !args.watch || args.count.is_some_and(|n| shown >= n) {
            return ExitCode::SUCCESS;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}

/// Options of `swarm monitor`.
#[derive(Debug, clap::Args)]
pub(crate) struct MonitorArgs {
    /// Stop after this many seconds (default: run until interrupted; a wait
    /// too long for the clock means until interrupted).
    #[arg(long)]
    seconds: Option<u64>,
}

/// Prints every message on the swarm's channels as it arrives (the brief's
/// `redis_monitor.py`).
pub(crate) async fn monitor(args: MonitorArgs, ctx: &Ctx) -> ExitCode {
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    let mut streams = Vec::new();
    for c in Channel::ALL {
        match bus.subscribe(c).await {
            Ok(s) => streams.push(s.map(move |m| (c, m)).boxed()),
            Err(e) => return fail("subscribe", e),
        }
    }
    let mut all = futures::stream::select_all(streams);
    let until = args.seconds.map(Duration::from_secs);
    let deadline = until.map(crate::ctx::deadline_after);
    loop {
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, all.next()).await.ok().flatten(),
                None => all.next().await,
            }
        };
        tokio::select! {
            m = next => match m {
                Some((c, Ok(msg))) => println!("{} {c} {msg}", chrono::Utc::now().format("%H:%M:%S%.3f")),
                Some((_, Err(e))) => return fail("monitor", e),
                None => return ExitCode::SUCCESS,
            },
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}
