//! The context of a command: everything a command composes, built once from
//! the global options ([`CtxArgs`]) and handed to every command.
//!
//! | what | how a command gets it |
//! |---|---|
//! | the clock (`--now`) | [`Ctx::clock`] |
//! | the bus | [`Ctx::bus`], the one way in, with the [`BusUse`] of the command |
//! | the tier configuration | [`Ctx::tiers`], one value for every command |
//! | the price table | [`Ctx::prices`] (the built-in table) |
//! | the accountant (ledger and budgets) | [`Ctx::accountant`] |
//! | the Claude client | [`Ctx::anthropic`] |
//! | the Gemini shard pool | [`Ctx::gemini_shards`] and [`Ctx::shard_pool`] |
//! | the status block's names | [`Ctx::status_config`] |
//!
//! **The bus** is Redis: `--redis-url`, else `REDIS_URL` (also from `.env` in
//! the current folder, never a parent's, which `main` reads before the
//! arguments are parsed), else the brief's `redis://127.0.0.1:6379`;
//! `--cluster` names a Cluster seed node, `--namespace` prefixes every key.
//! `--memory` selects an empty in-process bus instead, for commands where
//! that makes sense (`swarm demo`, trials, tests). When nothing answers at
//! the URL the command fails with one line naming it (password redacted).
//! What a command asks of the bus is its [`BusUse`]:
//!
//! - one-shot commands give up on a Redis that is away after the bus's retry
//!   window (5 s);
//! - long-running ones (`worker run`: [`BusUse::WORKER`]; `librarian serve`:
//!   [`BusUse::DAEMON`]) ride out outages: retried until Redis answers, or
//!   for `--redis-give-up` seconds;
//! - servers and daemons (`serve`, `mcp`, `otlp serve`: [`BusUse::SERVER`];
//!   `librarian serve`) adopt raw `finding:<id>` keys written around the
//!   library; the adopter runs as long as the context, and a later
//!   connection's replaces an earlier one's.
//!
//! The Redis behind the bus, for what only Redis does (tokens, reindexing,
//! taking back in-flight tasks), is [`Ctx::redis`]: the connection opened
//! last, never a second one.
//!
//! **The tiers** (which name `cost:<tier>` and the ledger use for each role,
//! and which model each role calls) are global options with environment
//! twins: `--coordinator-tier`/`SWARM_COORDINATOR_TIER` (`sonnet`),
//! `--worker-tier`/`SWARM_WORKER_TIER` (`haiku`),
//! `--librarian-tier`/`SWARM_LIBRARIAN_TIER` (`gemini`), and
//! `--coordinator-model`, `--worker-model`, `--librarian-model`
//! (`SWARM_COORDINATOR_MODEL`, `SWARM_WORKER_MODEL`,
//! `SWARM_LIBRARIAN_MODEL`). What `swarm run` and `swarm worker run` record,
//! what Claude Code's hooks and `swarm otlp` book, what `swarm cost` and
//! `swarm status` report, all read this one value.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use swarmbus_agents::status::StatusConfig;
use swarmbus_core::clock::{Clock, OffsetClock, SharedClock, SystemClock};
use swarmbus_core::keys::{Key, KeySpace, Namespace};
use swarmbus_core::{Bus, BusLimits, FindingId, QuotaLimits, Result, TierName};
use swarmbus_cost::defaults::{COORDINATOR_MODEL, LIBRARIAN_MODEL, WORKER_MODEL};
use swarmbus_cost::{Accountant, Billing, BudgetLimits, PriceTable, TierModel, Tiers};
use swarmbus_memory::MemoryBus;
use swarmbus_redis::{FindingAdopter, RedisBus, RedisConfig};

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
    #[command(flatten)]
    pub(crate) tiers: TierArgs,
}

/// The tier configuration: each role's name (as in `cost:<tier>` and the
/// ledger) and model. Global, so every command records and reports under
/// the same names.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TierArgs {
    /// The coordinator tier's name.
    #[arg(
        long,
        env = "SWARM_COORDINATOR_TIER",
        global = true,
        default_value = "sonnet",
        value_parser = parse_tier_name,
        value_name = "NAME"
    )]
    pub(crate) coordinator_tier: TierName,
    /// The model the coordinator tier calls (savings are priced on it).
    #[arg(
        long,
        env = "SWARM_COORDINATOR_MODEL",
        global = true,
        default_value = COORDINATOR_MODEL,
        value_name = "MODEL"
    )]
    pub(crate) coordinator_model: String,
    /// The worker tier's name.
    #[arg(
        long,
        env = "SWARM_WORKER_TIER",
        global = true,
        default_value = "haiku",
        value_parser = parse_tier_name,
        value_name = "NAME"
    )]
    pub(crate) worker_tier: TierName,
    /// The model the worker tier calls (`swarm run --model` and `swarm
    /// worker run --model` call another one without renaming the tier).
    #[arg(
        long,
        env = "SWARM_WORKER_MODEL",
        global = true,
        default_value = WORKER_MODEL,
        value_name = "MODEL"
    )]
    pub(crate) worker_model: String,
    /// The librarian tier's name.
    #[arg(
        long,
        env = "SWARM_LIBRARIAN_TIER",
        global = true,
        default_value = "gemini",
        value_parser = parse_tier_name,
        value_name = "NAME"
    )]
    pub(crate) librarian_tier: TierName,
    /// The model the librarian tier calls (on its free tier).
    #[arg(
        long,
        env = "SWARM_LIBRARIAN_MODEL",
        global = true,
        default_value = LIBRARIAN_MODEL,
        value_name = "MODEL"
    )]
    pub(crate) librarian_model: String,
}

impl TierArgs {
    /// The tiers these options name (the librarian billed on its free tier).
    pub(crate) fn tiers(&self) -> Tiers {
        Tiers::new(
            TierModel::new(self.coordinator_tier.clone(), &self.coordinator_model),
            TierModel::new(self.worker_tier.clone(), &self.worker_model),
            TierModel::new(self.librarian_tier.clone(), &self.librarian_model)
                .billing(Billing::FreeTier),
        )
    }
}

/// A tier name as the bus accepts it (`cost:<tier>`).
fn parse_tier_name(text: &str) -> std::result::Result<TierName, String> {
    TierName::new(text).map_err(|e| one_line(&e.to_string()))
}

/// What a command asks of the bus it opens ([`Ctx::bus`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BusUse {
    /// Retry a Redis that is away until it answers (or `--redis-give-up`).
    ride: bool,
    /// Adopt raw `finding:<id>` keys into the index while the context lives.
    adopt: bool,
}

impl BusUse {
    /// A one-shot command: a Redis that is away fails it after the bus's
    /// retry window (5 s, `--redis-give-up` does not apply).
    pub(crate) const ONE_SHOT: Self = Self {
        ride: false,
        adopt: false,
    };

    /// A worker process: rides out Redis outages (transient failures
    /// retried with capped backoff and jitter, one warning per outage) until
    /// Redis answers, or for `--redis-give-up` seconds.
    pub(crate) const WORKER: Self = Self {
        ride: true,
        adopt: false,
    };

    /// A server answering requests (`serve`, `mcp`, `otlp serve`): a request
    /// waits at most the retry window, and on Redis the keys written around
    /// the library (`redis-cli SET finding:<id> …`) join the index within
    /// seconds while it runs.
    pub(crate) const SERVER: Self = Self {
        ride: false,
        adopt: true,
    };

    /// A daemon (`librarian serve`): rides out outages like a worker and
    /// adopts raw keys like a server.
    pub(crate) const DAEMON: Self = Self {
        ride: true,
        adopt: true,
    };
}

/// The Redis connection a context opened last, and its adopter.
struct Opened {
    redis: RedisBus,
    _adopter: Option<FindingAdopter>,
}

/// The shared context of a command.
pub(crate) struct Ctx {
    args: CtxArgs,
    /// The one clock of the process (the system's, or `--now`'s).
    clock: SharedClock,
    /// The one tier configuration of the process.
    tiers: Tiers,
    /// The built-in price table, loaded on first use.
    prices: OnceLock<std::result::Result<Arc<PriceTable>, String>>,
    /// What [`Ctx::bus`] opened last on Redis (a std mutex: never held
    /// across an await).
    opened: Mutex<Option<Opened>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("url", &self.shown_url())
            .field("memory", &self.args.memory)
            .field("tiers", &self.tiers)
            .finish_non_exhaustive()
    }
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
    /// Keeps the options, and makes the process's clock and tiers.
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
        let tiers = args.tiers.tiers();
        Self {
            args,
            clock,
            tiers,
            prices: OnceLock::new(),
            opened: Mutex::new(None),
        }
    }

    /// The process's clock: every decision by date or time reads it.
    pub(crate) fn clock(&self) -> SharedClock {
        Arc::clone(&self.clock)
    }

    /// The tier configuration every command records and reports under.
    pub(crate) fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    /// The status block's settings with this context's tier names.
    pub(crate) fn status_config(&self) -> StatusConfig {
        StatusConfig::default().tiers(
            self.tiers.coordinator.name.clone(),
            self.tiers.worker.name.clone(),
            self.tiers.librarian.name.clone(),
        )
    }

    /// The built-in price table (loaded once per process).
    pub(crate) fn prices(&self) -> std::result::Result<Arc<PriceTable>, String> {
        self.prices
            .get_or_init(|| {
                PriceTable::built_in()
                    .map(Arc::new)
                    .map_err(|e| one_line(&e.to_string()))
            })
            .clone()
    }

    /// The accountant of a command: the ledger on `bus` priced by `table`,
    /// the budgets of `limits`, the context's tiers and clock.
    pub(crate) fn accountant(
        &self,
        bus: Arc<dyn Bus>,
        table: Arc<PriceTable>,
        limits: BudgetLimits,
    ) -> std::result::Result<Accountant<dyn Bus>, String> {
        Accountant::new(bus, table, self.tiers.clone(), limits)
            .map(|a| a.with_clock(self.clock()))
            .map_err(|e| one_line(&e.to_string()))
    }

    /// The Claude (Messages API) client on `config` (from
    /// [`swarmbus_anthropic::ClientConfig::from_env`], which reads
    /// `ANTHROPIC_BASE_URL`), its key `ANTHROPIC_API_KEY` (held as a secret,
    /// sent only in `x-api-key`), on the context's clock, checking each
    /// model against `catalog`'s lifecycles before sending. `None` without a
    /// key (unset or blank).
    pub(crate) fn anthropic(
        &self,
        config: swarmbus_anthropic::ClientConfig,
        catalog: Option<Arc<PriceTable>>,
    ) -> std::result::Result<Option<swarmbus_anthropic::AnthropicClient>, swarmbus_anthropic::Error>
    {
        let Some(key) = std::env::var(swarmbus_anthropic::client::API_KEY_VAR)
            .ok()
            .filter(|k| !k.trim().is_empty())
        else {
            return Ok(None);
        };
        let mut client =
            swarmbus_anthropic::AnthropicClient::new(secrecy::SecretString::from(key), config)?
                .with_clock(self.clock());
        if let Some(table) = catalog {
            client = client.with_catalog(table as Arc<dyn swarmbus_core::ModelCatalog>);
        }
        Ok(Some(client))
    }

    /// The Gemini shards of the environment (`GEMINI_API_KEY_SHARD<N>`, with
    /// `GEMINI_SHARD<N>_PROJECT`, `_PER_DAY`, `_PER_MINUTE`; the free tier's
    /// limits otherwise). Empty when none is set.
    pub(crate) fn gemini_shards(
        &self,
    ) -> std::result::Result<Vec<swarmbus_gemini::ShardConfig>, swarmbus_gemini::Error> {
        swarmbus_gemini::pool::shards_from_env(QuotaLimits::free_tier())
    }

    /// The shard pool over `shards` calling `model`, its quota ledger on
    /// `bus`, clients from [`swarmbus_gemini::ClientConfig::from_env`]
    /// (`GEMINI_BASE_URL`), on the context's clock, checking each call
    /// against `catalog`'s lifecycles.
    pub(crate) fn shard_pool(
        &self,
        shards: Vec<swarmbus_gemini::ShardConfig>,
        model: &str,
        bus: Arc<dyn Bus>,
        catalog: Option<Arc<PriceTable>>,
    ) -> std::result::Result<swarmbus_gemini::ShardPool<dyn Bus>, swarmbus_gemini::Error> {
        let config = swarmbus_gemini::PoolConfig::default()
            .model(model.to_owned())
            .client(swarmbus_gemini::ClientConfig::from_env());
        let mut pool =
            swarmbus_gemini::ShardPool::new(shards, bus, config)?.with_clock(self.clock());
        if let Some(table) = catalog {
            pool = pool.with_catalog(table as Arc<dyn swarmbus_core::ModelCatalog>);
        }
        Ok(pool)
    }

    /// Checks the models a command is about to call against the price
    /// table's lifecycles on the clock's today: a retired one is an error
    /// naming its replacement and how to choose another model, a deprecated
    /// one a warning on stderr. `models` pairs each with what chooses it
    /// (`"the worker model (--model, SWARM_WORKER_MODEL)"`).
    pub(crate) fn check_models(
        &self,
        table: &PriceTable,
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

    /// Opens the swarm's bus, the one way in: an empty in-process bus with
    /// `--memory`, else Redis (cluster, namespace, and the retries of `use_`)
    /// with the raw-key adopter when `use_` asks for it. Fails with one line
    /// naming the URL (password redacted). Each call connects afresh (a
    /// server reconnecting after an outage calls it again).
    pub(crate) async fn bus(&self, use_: BusUse) -> std::result::Result<Arc<dyn Bus>, String> {
        if self.args.memory {
            let keys = self.key_space().map_err(|e| one_line(&e.to_string()))?;
            return Ok(Arc::new(MemoryBus::with_config(keys, BusLimits::default())));
        }
        let redis = self.connect(use_).await?;
        let adopter = use_
            .adopt
            .then(|| redis.spawn_finding_adopter(ADOPT_INTERVAL));
        let bus: Arc<dyn Bus> = Arc::new(redis.clone());
        if let Ok(mut opened) = self.opened.lock() {
            *opened = Some(Opened {
                redis,
                _adopter: adopter,
            });
        }
        Ok(bus)
    }

    /// The Redis behind the bus [`Ctx::bus`] opened last, for what only
    /// Redis does (tokens, reindexing, taking back in-flight tasks); `None`
    /// on the in-process bus or before the bus is opened.
    pub(crate) fn redis(&self) -> Option<RedisBus> {
        self.opened
            .lock()
            .ok()
            .and_then(|o| o.as_ref().map(|o| o.redis.clone()))
    }

    /// Connects to Redis, or fails with one line naming the URL.
    async fn connect(&self, use_: BusUse) -> std::result::Result<RedisBus, String> {
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
            if use_.ride {
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

    /// A context made of these global options.
    fn ctx_of(args: &[&str]) -> Ctx {
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            ctx: CtxArgs,
        }
        Ctx::new(Args::parse_from(args).ctx)
    }

    // Moved here from cost_cmd.rs (the tier options are global now).
    #[test]
    fn a_tier_role_picks_the_billing() {
        let ctx = ctx_of(&["swarm", "--memory"]);
        let tiers = ctx.tiers();
        let gemini = swarmbus_core::TierName::new("gemini").unwrap();
        assert_eq!(tiers.role_of(&gemini), Some(swarmbus_core::Tier::Librarian));
        assert_eq!(tiers.librarian.billing, swarmbus_cost::Billing::FreeTier);
        assert_eq!(*tiers, swarmbus_cost::Tiers::default());
    }

    #[test]
    fn a_renamed_tier_is_the_one_value_every_command_reads() {
        let ctx = ctx_of(&[
            "swarm",
            "--worker-tier",
            "cheap",
            "--coordinator-model",
            "m",
        ]);
        let cheap = swarmbus_core::TierName::new("cheap").unwrap();
        assert_eq!(ctx.tiers().worker.name, cheap);
        assert_eq!(
            ctx.tiers().role_of(&cheap),
            Some(swarmbus_core::Tier::Worker)
        );
        assert_eq!(ctx.tiers().coordinator.model, "m");
        assert_eq!(ctx.status_config().worker, cheap);
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
