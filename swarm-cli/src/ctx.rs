//! What every command shares: the bus and the environment.
//!
//! The bus is Redis: `--redis-url`, else `REDIS_URL` (also from `.env` in
//! the current folder, never a parent's, which `main` reads before the
//! arguments are parsed), else the brief's
//! `redis://127.0.0.1:6379`. `--memory` selects an empty in-process bus
//! instead, for commands where that makes sense (`swarm demo`). When nothing
//! answers at the URL the command fails with one line naming it (password
//! redacted).

use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use swarmbus_core::BusLimits;
use swarmbus_core::bus::Bus;
use swarmbus_core::clock::{Clock, OffsetClock, SharedClock, SystemClock};
use swarmbus_core::keys::{Key, KeySpace, Namespace};
use swarmbus_core::{FindingId, Result};
use swarmbus_memory::MemoryBus;
use swarmbus_redis::{RedisBus, RedisConfig};

/// How often long-running commands reindex raw finding keys where keyspace
/// notifications are refused.
pub(crate) const ADOPT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The brief's Redis: "Redis running on: localhost:6379".
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Options shared by every command.
#[derive(Debug, clap::Args)]
pub(crate) struct CtxArgs {
    /// Redis URL of the swarm's bus (`redis://`, `rediss://`, with ACL user and
    /// password).
    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        hide_env_values = true,
        default_value = DEFAULT_REDIS_URL
    )]
    pub(crate) redis_url: String,
    /// The URL names a Redis Cluster seed node.
    #[arg(long, env = "REDIS_CLUSTER", global = true)]
    pub(crate) cluster: bool,
    /// Key namespace of the swarm (`{ns}:` prefix); required on a Cluster.
    #[arg(long, env = "SWARM_NAMESPACE", global = true)]
    pub(crate) namespace: Option<String>,
    /// Use an empty in-process bus instead of Redis (nothing is shared with
    /// other processes; meant for `swarm demo`, trials and tests).
    #[arg(
        long,
        global = true,
        env = "SWARM_MEMORY",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) memory: bool,
    /// Run as if the time were this (RFC 3339, e.g. `2027-06-01T09:00:00Z`);
    /// the clock runs on from there. Every decision by date (spend-limit
    /// stops, quota days, price rows, model retirements) reads it. For tests
    /// and rehearsals; said on stderr when set.
    #[arg(long, env = "SWARM_NOW", global = true, value_name = "TIME")]
    pub(crate) now: Option<DateTime<Utc>>,
    /// How long the long-running commands (`worker run`, `librarian serve`)
    /// retry while Redis is away before giving up (default: never;
    /// one-shot commands give up after 5 s).
    #[arg(
        long,
        env = "SWARM_REDIS_GIVE_UP",
        global = true,
        value_name = "SECONDS"
    )]
    pub(crate) redis_give_up: Option<u64>,
}

/// The shared context of a command.
#[derive(Debug)]
pub(crate) struct Ctx {
    args: CtxArgs,
    /// The one clock of the process (the system's, or `--now`'s).
    clock: SharedClock,
    /// Set by the long-running commands: the bus rides out outages.
    ride: std::sync::atomic::AtomicBool,
}

/// Reads `.env` from the current folder only (never a parent's: a `.env`
/// planted above the folder is not read). Variables already set win over
/// it. Called before the arguments are parsed, so that clap's
/// `env = "REDIS_URL"` sees a `REDIS_URL` written in `.env`. A provider base
/// URL (`*_BASE_URL`) that comes from the file is named on stderr, so a
/// planted one is seen before any key is sent to it.
pub(crate) fn load_dotenv() {
    for line in dotenv_notes() {
        eprintln!("swarm: {line}");
    }
}

/// Loads `./.env` and says which base URLs it set.
fn dotenv_notes() -> Vec<String> {
    let path = std::path::Path::new(".env");
    if !path.is_file() {
        return Vec::new();
    }
    let from_file: Vec<(String, String)> = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter
            .filter_map(std::result::Result::ok)
            .filter(|(k, _)| std::env::var_os(k).is_none())
            .collect(),
        Err(_) => Vec::new(),
    };
    if let Err(e) = dotenvy::from_path(path) {
        return vec![format!("./.env not read: {}", one_line(&e.to_string()))];
    }
    let shown = std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "./.env".into());
    from_file
        .iter()
        .filter(|(k, _)| k.ends_with("_BASE_URL"))
        .map(|(k, v)| format!("{k}={} comes from {shown}", redact_url(v)))
        .collect()
}

impl Ctx {
    /// Keeps the options, and makes the process's clock.
    pub(crate) fn new(args: CtxArgs) -> Self {
        let clock: SharedClock = match args.now {
            Some(start) => {
                eprintln!(
                    "swarm: the clock starts at {} (--now / SWARM_NOW), not the system's",
                    start.to_rfc3339()
                );
                Arc::new(OffsetClock::starting_at(start))
            }
            None => Arc::new(SystemClock),
        };
        Self {
            args,
            clock,
            ride: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Makes the bus this context opens ride out Redis outages: transient
    /// failures are retried (capped backoff with jitter, one warning per
    /// outage) until Redis answers, or for `--redis-give-up` seconds.
    pub(crate) fn ride_outages(&self) {
        self.ride.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The process's clock: every decision by date or time reads it.
    pub(crate) fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }

    /// Checks the models a command is about to call against the price
    /// table's lifecycles on the clock's today: a retired one is an error
    /// naming its replacement and how to choose another model, a deprecated
    /// one a warning on stderr. `models` pairs each with what chooses it
    /// (`"the worker model (--model, SWARM_WORKER_MODEL)"`).
    pub(crate) fn check_models(
        &self,
        table: &swarmbus_cost::PriceTable,
        models: &[(&str, &str)],
    ) -> std::result::Result<(), String> {
        check_models(table, models, self.clock.today())
    }

    /// Whether commands run on the in-process bus.
    pub(crate) fn is_memory(&self) -> bool {
        self.args.memory
    }

    /// The Redis URL; an empty one (`REDIS_URL=` in a `.env`) means the
    /// default.
    fn url(&self) -> &str {
        match self.args.redis_url.trim() {
            "" => DEFAULT_REDIS_URL,
            url => url,
        }
    }

    /// The Redis URL with its password replaced by `***`.
    pub(crate) fn shown_url(&self) -> String {
        redact_url(self.url())
    }

    fn key_space(&self) -> Result<KeySpace> {
        Ok(match self.namespace()? {
            Some(ns) => KeySpace::namespaced(&ns),
            None => KeySpace::default(),
        })
    }

    /// The namespace's name as given (`""` for the default key space).
    pub(crate) fn namespace_name(&self) -> String {
        self.args.namespace.clone().unwrap_or_default()
    }

    fn namespace(&self) -> Result<Option<Namespace>> {
        self.args
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .map(Namespace::new)
            .transpose()
    }

    /// The full key of a finding, namespace included.
    pub(crate) fn finding_key(&self, id: &FindingId) -> String {
        match self.key_space() {
            Ok(keys) => keys.format(&Key::Finding(id.clone())),
            Err(_) => Key::Finding(id.clone()).to_string(),
        }
    }

    /// Connects to Redis, or fails with one line naming the URL.
    pub(crate) async fn redis(&self) -> std::result::Result<RedisBus, String> {
        let shown = self.shown_url();
        let config = (|| -> Result<RedisConfig> {
            let url = self.url();
            let mut config = if self.args.cluster {
                RedisConfig::cluster([url])?
            } else {
                RedisConfig::from_url(url)?
            };
            if let Some(ns) = self.namespace()? {
                config = config.namespace(ns);
            }
            if self.ride.load(std::sync::atomic::Ordering::Relaxed) {
                config = match self.args.redis_give_up {
                    Some(secs) => config.retry_for(std::time::Duration::from_secs(secs)),
                    None => config.ride_outages(),
                };
            }
            Ok(config)
        })()
        .map_err(|e| one_line(&format!("bad Redis configuration for {shown}: {e}")))?;
        RedisBus::connect(config).await.map_err(|e| {
            one_line(&format!(
                "nothing answers at {shown} ({e}); start redis-server or set --redis-url / REDIS_URL"
            ))
        })
    }

    /// Opens the swarm's bus: Redis, or in-memory with `--memory`.
    pub(crate) async fn bus(&self) -> std::result::Result<Arc<dyn Bus>, String> {
        if self.args.memory {
            let keys = self.key_space().map_err(|e| one_line(&e.to_string()))?;
            return Ok(Arc::new(MemoryBus::with_config(keys, BusLimits::default())));
        }
        Ok(Arc::new(self.redis().await?))
    }

    /// Opens the bus or prints the one-line error and gives exit status 1.
    pub(crate) async fn open(&self) -> std::result::Result<Arc<dyn Bus>, ExitCode> {
        self.bus().await.map_err(|e| fail("cannot open the bus", e))
    }
}

/// [`Ctx::check_models`] on `today`.
pub(crate) fn check_models(
    table: &swarmbus_cost::PriceTable,
    models: &[(&str, &str)],
    today: chrono::NaiveDate,
) -> std::result::Result<(), String> {
    for (what, model) in models {
        match table.check_model(model, today) {
            Ok(None) => {}
            Ok(Some(d)) => eprintln!("swarm: warning: {what}: {}", one_line(&d.to_string())),
            Err(retired) => return Err(format!("{what}: {}", one_line(&retired.to_string()))),
        }
    }
    Ok(())
}

/// Replaces the password of a `scheme://user:password@host` URL by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{path}")
            } else {
                // `redis://secret@host`: some clients read a lone userinfo as
                // the password.
                format!("{scheme}://***@{host}{path}")
            }
        }
        None => url.to_owned(),
    }
}

/// Joins the lines of a message into one.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints an error of a command to stderr and gives exit status 1.
pub(crate) fn fail(what: &str, err: impl std::fmt::Display) -> ExitCode {
    eprintln!("swarm: {what}: {}", one_line(&err.to_string()));
    ExitCode::FAILURE
}

/// When a wait of `wait` (given by the user) from now ends; a wait too long
/// for the clock (`--seconds 18446744073709551615`) saturates to about 30
/// years instead of overflowing.
pub(crate) fn deadline_after(wait: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(wait)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::{Ctx, CtxArgs, redact_url};
    use clap::Parser;

    /// A context whose clock starts at `now`.
    fn ctx_at(now: &str) -> Ctx {
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            ctx: CtxArgs,
        }
        Ctx::new(Args::parse_from(["swarm", "--memory", "--now", now]).ctx)
    }

    #[test]
    fn a_default_model_the_catalog_retires_later_is_warned_about_then_refused_by_name() {
        // Price data that one day retires today's coordinator default.
        let later = swarmbus_cost::PriceTable::from_toml(
            r#"
            [[lifecycle]]
            model = "claude-sonnet-5-5"
            retires = "2028-03-01"
            replacement = "claude-sonnet-6"
            source = "https://example.com/a-future-notice"
            "#,
            "test",
        )
        .unwrap();
        let table = swarmbus_cost::PriceTable::built_in()
            .unwrap()
            .with_overrides(later)
            .unwrap();
        let models = [("the coordinator model", "claude-sonnet-5-5")];
        // Before the date: a warning on stderr, the command goes on.
        assert!(
            ctx_at("2028-02-29T23:00:00Z")
                .check_models(&table, &models)
                .is_ok()
        );
        // From the date: a startup error naming the replacement.
        let e = ctx_at("2028-03-01T00:00:00Z")
            .check_models(&table, &models)
            .unwrap_err();
        assert_eq!(
            e,
            "the coordinator model: model claude-sonnet-5-5 was retired on 2028-03-01; use claude-sonnet-6"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://swarm:hunter2@127.0.0.1:1/0"),
            "redis://swarm:***@127.0.0.1:1/0"
        );
        assert_eq!(redact_url("redis://:hunter2@host"), "redis://:***@host");
        assert_eq!(redact_url("redis://hunter2@host"), "redis://***@host");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("nonsense"), "nonsense");
    }
}
