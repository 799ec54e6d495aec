//! `swarm status` and `swarm monitor`.

use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use swarmbus_core::keys::{Channel, ShardId, TierName};
use swarmbus_core::status::{StatusConfig, SwarmStatus};

use crate::ctx::{Ctx, fail};

/// Options of `swarm status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print JSON instead of the status block.
    #[arg(long)]
    json: bool,
    /// How many shards the Librarians line lists.
    #[arg(long, default_value_t = 5)]
    shards: u32,
    /// The coordinator tier's name.
    #[arg(long, default_value = "sonnet")]
    coordinator: String,
    /// The worker tier's name.
    #[arg(long, default_value = "haiku")]
    worker: String,
    /// The librarian tier's name.
    #[arg(long, default_value = "gemini")]
    librarian: String,
}

impl StatusArgs {
    fn config(&self) -> swarmbus_core::Result<StatusConfig> {
        let shards = (1..=self.shards)
            .map(ShardId::new)
            .collect::<swarmbus_core::Result<Vec<_>>>()?;
        Ok(StatusConfig::default()
            .tiers(
                TierName::new(self.coordinator.clone())?,
                TierName::new(self.worker.clone())?,
                TierName::new(self.librarian.clone())?,
            )
            .shards(shards))
    }
}

/// Prints the status.
pub(crate) async fn run(args: StatusArgs, ctx: &Ctx) -> ExitCode {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => return fail("status", e),
    };
    let bus = match ctx.bus().await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    match SwarmStatus::snapshot(&*bus, &config).await {
        Ok(s) if args.json => {
            println!("{}", s.to_json());
            ExitCode::SUCCESS
        }
        Ok(s) => {
            print!("{}", s.render());
            ExitCode::SUCCESS
        }
        Err(e) => fail("status", e),
    }
}

/// Options of `swarm monitor`.
#[derive(Debug, clap::Args)]
pub(crate) struct MonitorArgs {
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    seconds: Option<u64>,
}

/// Prints every message on the swarm's channels as it arrives (the brief's
/// `redis_monitor.py`).
pub(crate) async fn monitor(args: MonitorArgs, ctx: &Ctx) -> ExitCode {
    let bus = match ctx.bus().await {
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
