//! `swarm cost quote`, `swarm cost report`, `swarm cost record`,
//! `swarm cost prices` and `swarm cost prices import`.
//!
//! Exit status: 0 priced, 3 unpriced (unknown model, no price in force, a
//! bucket without a rate), 4 refused by a budget (`record`), 1 any other
//! failure, 2 bad arguments (clap). A quote of a retired model still prices
//! it (history) and says it is retired, naming the replacement.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use swarmbus_core::keys::{SessionId, TierName, WorkerId};
use swarmbus_cost::import::LITELLM_SOURCE;
use swarmbus_cost::{
    Billing, Bucket, BudgetLimits, Call, Cost, Ledger, LifecycleStatus, LitellmImport, Money,
    PriceTable, Provider, ReportFilter, Usage,
};

use crate::ctx::{BusUse, Ctx, fail};

/// Exit status of a call that could not be priced.
const UNPRICED: u8 = 3;
/// Exit status of a call a budget refused.
const BUDGET_REFUSED: u8 = 4;

/// Cost commands. The arguments are boxed so that this enum stays small in
/// the top-level command enum.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CostCmd {
    /// Price one call from its token counts.
    Quote(Box<QuoteArgs>),
    /// Report the ledger on the bus: spend per tier, model, worker and
    /// session, worker share against the target, savings.
    Report(Box<ReportArgs>),
    /// Price one call and record it in the ledger on the bus.
    Record(Box<RecordArgs>),
    /// List the price table (every row, its source and effective date), or
    /// import LiteLLM's price map (`swarm cost prices import`).
    Prices(PricesArgs),
}

/// Where prices come from.
#[derive(Debug, clap::Args)]
struct PriceArgs {
    /// A price table file (same format as the built-in one) laid over the
    /// built-in table: its rows replace built-in rows of the same model and
    /// effective date and add the others.
    #[arg(long, env = "SWARM_PRICES", value_name = "FILE")]
    prices: Option<PathBuf>,
}

impl PriceArgs {
    fn table(&self) -> Result<PriceTable, ExitCode> {
        let table = match &self.prices {
            Some(path) => PriceTable::built_in_with_file(path),
            None => PriceTable::built_in(),
        };
        table.map_err(|e| fail("price table", e))
    }
}

/// Tokens per bucket.
#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// Fresh (uncached) input tokens.
    #[arg(long, default_value_t = 0, value_name = "N")]
    input_tokens: u64,
    /// Output tokens, thinking included.
    #[arg(long, default_value_t = 0, value_name = "N")]
    output_tokens: u64,
    /// Input tokens read from a cache.
    #[arg(long, default_value_t = 0, value_name = "N")]
    cache_read_tokens: u64,
    /// Input tokens written to a 5-minute cache.
    #[arg(long = "cache-write-5m-tokens", default_value_t = 0, value_name = "N")]
    cache_write_5m_tokens: u64,
    /// Input tokens written to a 1-hour cache.
    #[arg(long = "cache-write-1h-tokens", default_value_t = 0, value_name = "N")]
    cache_write_1h_tokens: u64,
}

impl TokenArgs {
    fn usage(&self) -> Usage {
        Usage::new(self.input_tokens, self.output_tokens)
            .with_cache_read(self.cache_read_tokens)
            .with_cache_write(self.cache_write_5m_tokens, self.cache_write_1h_tokens)
    }
}

/// Options of `swarm cost quote`.
#[derive(Debug, clap::Args)]
pub(crate) struct QuoteArgs {
    /// The model id or alias (`claude-haiku-4-5-20251001`).
    #[arg(long)]
    model: String,
    #[command(flatten)]
    tokens: TokenArgs,
    /// Price at the batch API's rates.
    #[arg(long)]
    batch: bool,
    /// Price as of this time (`YYYY-MM-DD` or RFC 3339) instead of now.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    at: Option<DateTime<Utc>>,
    #[command(flatten)]
    prices: PriceArgs,
    /// Print one JSON object: `{"model", "usd", "unpriced", "buckets"}`.
    #[arg(long)]
    json: bool,
}

/// Options of `swarm cost report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// Only this session's calls.
    #[arg(long)]
    session: Option<String>,
    /// Only this worker's calls.
    #[arg(long)]
    worker: Option<String>,
    #[command(flatten)]
    prices: PriceArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `swarm cost record`.
#[derive(Debug, clap::Args)]
pub(crate) struct RecordArgs {
    /// The tier that made the call (`haiku`).
    #[arg(long)]
    tier: String,
    /// The model id as called.
    #[arg(long)]
    model: String,
    /// The worker that made the call.
    #[arg(long)]
    worker: Option<String>,
    /// The session it belongs to.
    #[arg(long)]
    session: Option<String>,
    #[command(flatten)]
    tokens: TokenArgs,
    /// Read the usage from a provider's response JSON instead (`-`: stdin).
    #[arg(long, value_name = "FILE", requires = "provider")]
    usage_json: Option<PathBuf>,
    /// The provider whose JSON `--usage-json` holds.
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Billed through the batch API.
    #[arg(long, conflicts_with = "free_tier")]
    batch: bool,
    /// Billed on the free tier ($0, with its list price as shadow cost).
    #[arg(long)]
    free_tier: bool,
    /// When the call was made (`YYYY-MM-DD` or RFC 3339) instead of now.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    at: Option<DateTime<Utc>>,
    #[command(flatten)]
    prices: PriceArgs,
    /// Hold the call to a global budget (USD): refused with exit status 4,
    /// and not recorded, once spending on the bus has reached it.
    #[arg(long, value_parser = parse_usd, value_name = "USD")]
    global_budget: Option<Money>,
    /// Hold the call to a budget for its session (USD).
    #[arg(long, value_parser = parse_usd, value_name = "USD", requires = "session")]
    session_budget: Option<Money>,
    /// Hold the call to a budget for its worker (USD).
    #[arg(long, value_parser = parse_usd, value_name = "USD", requires = "worker")]
    worker_budget: Option<Money>,
    /// Print the ledger entry as JSON.
    #[arg(long)]
    json: bool,
}

/// A provider of usage JSON.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProviderArg {
    Anthropic,
    Gemini,
    OpenaiCompatible,
}

impl From<ProviderArg> for Provider {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Anthropic => Provider::Anthropic,
            ProviderArg::Gemini => Provider::Gemini,
            ProviderArg::OpenaiCompatible => Provider::OpenAiCompatible,
        }
    }
}

/// Options of `swarm cost prices`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct PricesArgs {
    #[command(subcommand)]
    action: Option<PricesAction>,
    #[command(flatten)]
    prices: PriceArgs,
    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,
}

/// What `swarm cost prices` can do besides listing.
#[derive(Debug, clap::Subcommand)]
enum PricesAction {
    /// Turn LiteLLM's `model_prices_and_context_window.json` into a
    /// price-table file that `--prices` accepts, and list what could not be
    /// mapped (on stderr, and in `--json`).
    Import(ImportArgs),
}

/// Options of `swarm cost prices import`.
#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// LiteLLM's price map (`model_prices_and_context_window.json`).
    #[arg(long, value_name = "FILE")]
    litellm: PathBuf,
    /// Where to write the price table (default: stdout). Written only when
    /// the whole import succeeded.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// From when the imported prices are in force (`YYYY-MM-DD` or RFC 3339;
    /// default: now).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    effective: Option<DateTime<Utc>>,
    /// The page cited as every row's source.
    #[arg(long, default_value = LITELLM_SOURCE, value_name = "URL")]
    source: String,
    /// Print a JSON summary on stdout (`{"out", "rows", "models",
    /// "unmapped": [{"key", "reason"}]}`); needs `--out`.
    #[arg(long, requires = "out")]
    json: bool,
}

/// Runs a cost command.
pub(crate) async fn run(cmd: CostCmd, ctx: &Ctx) -> ExitCode {
    let result = match cmd {
        CostCmd::Quote(args) => quote(*args, ctx),
        CostCmd::Report(args) => report(*args, ctx).await,
        CostCmd::Record(args) => record(*args, ctx).await,
        CostCmd::Prices(args) => match args.action {
            Some(PricesAction::Import(import)) => import_litellm(import, ctx),
            None => prices(args, ctx),
        },
    };
    result.unwrap_or_else(|code| code)
}

fn quote(args: QuoteArgs, ctx: &Ctx) -> Result<ExitCode, ExitCode> {
    let table = args.prices.table()?;
    let usage = args.tokens.usage();
    let billing = if args.batch {
        Billing::Batch
    } else {
        Billing::Standard
    };
    let at = args.at.unwrap_or_else(|| ctx.clock().now());
    let cost = table.price(&args.model, &usage, billing, at);
    let lifecycle = lifecycle_note(&table, &args.model, at);
    if args.json {
        let mut value = quote_json(&args.model, &usage, &cost);
        if let (Some(note), Some(object)) = (&lifecycle, value.as_object_mut()) {
            object.insert("lifecycle".into(), note.json.clone());
        }
        println!("{value}");
    } else {
        print!("{}", quote_text(&usage, &cost));
        if let Some(note) = &lifecycle {
            println!("  {}", note.text);
        }
    }
    if let Some(note) = &lifecycle {
        eprintln!("swarm: {}", note.text);
    }
    Ok(exit_for(&cost))
}

/// What a quote says about a deprecated or retired model.
struct LifecycleNote {
    text: String,
    json: Value,
}

/// The lifecycle of `model` at the quote's time, when it is deprecated or
/// retired (nothing for an active or legacy model, so the quote's JSON stays
/// the object).
fn lifecycle_note(table: &PriceTable, model: &str, at: DateTime<Utc>) -> Option<LifecycleNote> {
    let today = at.date_naive();
    let lifecycle = table.lifecycle(model)?;
    let replacement = table.live_replacement(&lifecycle, today);
    let use_instead = replacement
        .as_deref()
        .map_or_else(String::new, |r| format!("; use {r}"));
    match lifecycle.status(today) {
        LifecycleStatus::Retired { retired_on } => Some(LifecycleNote {
            text: format!(
                "RETIRED: {model} was retired on {retired_on} (calls to it fail){use_instead}"
            ),
            json: json!({
                "status": "retired",
                "retired_on": retired_on.to_string(),
                "replacement": replacement,
                "source": lifecycle.source,
            }),
        }),
        LifecycleStatus::Deprecated { retires_on } => Some(LifecycleNote {
            text: format!(
                "DEPRECATED: {model}{}{use_instead}",
                retires_on.map_or_else(String::new, |d| format!(" retires on {d}"))
            ),
            json: json!({
                "status": "deprecated",
                "retires_on": retires_on.map(|d| d.to_string()),
                "replacement": replacement,
                "source": lifecycle.source,
            }),
        }),
        _ => None,
    }
}

/// `{"model", "usd", "unpriced", "buckets"}`: exact decimal strings, `null`
/// where there is no price.
fn quote_json(asked: &str, usage: &Usage, cost: &Cost) -> Value {
    let mut buckets = serde_json::Map::new();
    for bucket in Bucket::ALL {
        let (rate, usd) = match cost.priced() {
            Some(p) => {
                let b = p.buckets.get(bucket);
                (
                    b.usd_per_mtok.map(|r| r.to_string()),
                    Some(b.usd.to_string()),
                )
            }
            None => (None, None),
        };
        buckets.insert(
            bucket.name().to_owned(),
            json!({"tokens": bucket.tokens(usage), "usd_per_mtok": rate, "usd": usd}),
        );
    }
    match cost.priced() {
        Some(p) => json!({
            "model": p.model,
            "usd": p.usd.to_string(),
            "unpriced": false,
            "buckets": buckets,
        }),
        None => json!({
            "model": asked,
            "usd": null,
            "unpriced": true,
            "buckets": buckets,
        }),
    }
}

fn quote_text(usage: &Usage, cost: &Cost) -> String {
    let Some(p) = cost.priced() else {
        return String::new();
    };
    let mut out = format!(
        "{} ({} billing, {} rates in force from {}; {})\n",
        p.model,
        p.billing,
        match p.context {
            swarmbus_cost::ContextTier::LongContext => "long-context",
            _ => "standard",
        },
        p.effective.format("%Y-%m-%d %H:%M UTC"),
        p.source
    );
    for (bucket, b) in p.buckets.iter() {
        if bucket.tokens(usage) == 0 && b.usd_per_mtok.is_none() {
            continue;
        }
        let rate = b
            .usd_per_mtok
            .map_or_else(|| "-".to_owned(), |r| format!("${r}/Mtok"));
        out.push_str(&format!(
            "  {:<15} {:>12} tokens × {:<14} = ${}\n",
            bucket.name(),
            b.tokens,
            rate,
            b.usd
        ));
    }
    out.push_str(&format!("  total ${}", p.usd));
    if let Some(shadow) = p.shadow() {
        out.push_str(&format!(" (free tier; list price ${shadow})"));
    }
    out.push('\n');
    out
}

/// 0 when priced; 3, with the reason on stderr, when not.
fn exit_for(cost: &Cost) -> ExitCode {
    match cost.unpriced() {
        None => ExitCode::SUCCESS,
        Some(why) => {
            eprintln!("swarm: UNPRICED: {why}");
            ExitCode::from(UNPRICED)
        }
    }
}

async fn report(args: ReportArgs, ctx: &Ctx) -> Result<ExitCode, ExitCode> {
    let table = args.prices.table()?;
    let tiers = ctx.tiers();
    let mut filter = ReportFilter::all();
    if let Some(s) = &args.session {
        filter = filter.session(SessionId::new(s.as_str()).map_err(|e| fail("session", e))?);
    }
    if let Some(w) = &args.worker {
        filter = filter.worker(WorkerId::new(w.as_str()).map_err(|e| fail("worker", e))?);
    }
    let bus = ctx
        .bus(BusUse::ONE_SHOT)
        .await
        .map_err(|e| fail("bus", e))?;
    let ledger = Ledger::new(bus, Arc::new(table)).map_err(|e| fail("ledger", e))?;
    let report = ledger
        .report(tiers, &filter)
        .await
        .map_err(|e| fail("reading the ledger", e))?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| fail("report", e))?;
        println!("{text}");
    } else {
        print!("{}", report.render());
    }
    Ok(ExitCode::SUCCESS)
}

async fn record(args: RecordArgs, ctx: &Ctx) -> Result<ExitCode, ExitCode> {
    let table = args.prices.table()?;
    let tiers = ctx.tiers();
    let tier = TierName::new(args.tier.as_str()).map_err(|e| fail("tier", e))?;
    let usage = match (&args.usage_json, args.provider) {
        (Some(path), Some(provider)) => usage_from_file(path, provider.into())?,
        _ => args.tokens.usage(),
    };
    let role = tiers.role_of(&tier);
    let billing = if args.batch {
        Billing::Batch
    } else if args.free_tier {
        Billing::FreeTier
    } else {
        role.and_then(|r| tiers.get(r))
            .map_or(Billing::Standard, |t| t.billing)
    };
    let mut call = Call::new(tier, args.model.as_str())
        .billing(billing)
        .at(args.at.unwrap_or_else(|| ctx.clock().now()));
    if let Some(role) = role {
        call = call.role(role);
    }
    if let Some(w) = &args.worker {
        call = call.worker(WorkerId::new(w.as_str()).map_err(|e| fail("worker", e))?);
    }
    if let Some(s) = &args.session {
        call = call.session(SessionId::new(s.as_str()).map_err(|e| fail("session", e))?);
    }
    let mut limits = BudgetLimits::unlimited();
    if let Some(usd) = args.global_budget {
        limits = limits.global(usd);
    }
    if let Some(usd) = args.session_budget {
        limits = limits.per_session(usd);
    }
    if let Some(usd) = args.worker_budget {
        limits = limits.per_worker(usd);
    }
    let bus = ctx
        .bus(BusUse::ONE_SHOT)
        .await
        .map_err(|e| fail("bus", e))?;
    let accountant = ctx
        .accountant(bus, Arc::new(table), limits)
        .map_err(|e| fail("ledger", e))?;
    // The usage is known, so the estimate is exact: the reservation is the cost.
    let pending = match accountant.reserve(call, &usage).await {
        Ok(pending) => pending,
        Err(e) if e.is_budget_refusal() => {
            eprintln!("swarm: REFUSED: {e}");
            return Err(ExitCode::from(BUDGET_REFUSED));
        }
        Err(e) => return Err(fail("budget", e)),
    };
    let entry = accountant
        .settle(pending, usage)
        .await
        .map_err(|e| fail("recording the call", e))?;
    if args.json {
        let text = serde_json::to_string(&entry).map_err(|e| fail("entry", e))?;
        println!("{text}");
    } else {
        match (entry.cost.usd(), entry.cost.shadow()) {
            (Some(usd), Some(shadow)) => println!(
                "recorded {} call to {}: ${usd} (free tier; list price ${shadow})",
                entry.tier, entry.model
            ),
            (Some(usd), None) => {
                println!("recorded {} call to {}: ${usd}", entry.tier, entry.model)
            }
            (None, _) => println!("recorded {} call to {}: UNPRICED", entry.tier, entry.model),
        }
    }
    Ok(exit_for(&entry.cost))
}

fn usage_from_file(path: &PathBuf, provider: Provider) -> Result<Usage, ExitCode> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| fail("reading stdin", e))?
    } else {
        std::fs::read_to_string(path).map_err(|e| fail(&path.display().to_string(), e))?
    };
    let json: Value = serde_json::from_str(&text).map_err(|e| fail("usage JSON", e))?;
    provider.usage(&json).map_err(|e| fail("usage JSON", e))
}

fn prices(args: PricesArgs, ctx: &Ctx) -> Result<ExitCode, ExitCode> {
    use std::fmt::Write as _;
    let table = args.prices.table()?;
    if args.json {
        let text =
            serde_json::to_string_pretty(table.rows()).map_err(|e| fail("price table", e))?;
        return Ok(print_all(&format!("{text}\n")));
    }
    let today = ctx.clock().today();
    let mut out = String::new();
    let rates = |r: &swarmbus_cost::Rates| {
        Bucket::ALL
            .into_iter()
            .filter_map(|b| r.get(b).map(|rate| format!("{} {rate}", b.name())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for row in table.rows() {
        let _ = writeln!(
            out,
            "{} from {} ({}{}): {}",
            row.model,
            row.effective.format("%Y-%m-%d %H:%M UTC"),
            row.provider,
            if row.free_tier { ", free tier" } else { "" },
            rates(&row.standard)
        );
        if !row.aliases.is_empty() {
            let _ = writeln!(out, "  aliases: {}", row.aliases.join(", "));
        }
        if let Some(batch) = &row.batch {
            let _ = writeln!(out, "  batch: {}", rates(batch));
        }
        if let Some(lc) = &row.long_context {
            let _ = writeln!(
                out,
                "  prompts above {} tokens: {}",
                lc.above_prompt_tokens,
                rates(&lc.standard)
            );
            if let Some(batch) = &lc.batch {
                let _ = writeln!(
                    out,
                    "  batch above {} tokens: {}",
                    lc.above_prompt_tokens,
                    rates(batch)
                );
            }
        }
        let _ = writeln!(out, "  source: {}", row.source);
    }
    if !table.lifecycles().is_empty() {
        out.push_str("\nlifecycle (status today):\n");
    }
    for lifecycle in table.lifecycles() {
        let dates = [
            lifecycle.deprecated_on.map(|d| format!("deprecated {d}")),
            lifecycle.retires_on.map(|d| format!("retires {d}")),
            lifecycle
                .replacement
                .as_ref()
                .map(|r| format!("replacement {r}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        let _ = writeln!(
            out,
            "{}: {}{}{}",
            lifecycle.model,
            lifecycle.status(today).name(),
            if dates.is_empty() { "" } else { "; " },
            dates
        );
        let _ = writeln!(out, "  source: {}", lifecycle.source);
    }
    Ok(print_all(&out))
}

/// Writes `text` to stdout; a closed pipe (`| head`) ends quietly instead of
/// panicking as `println!` would.
fn print_all(text: &str) -> ExitCode {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail("stdout", e),
    }
}

/// `swarm cost prices import --litellm FILE [--out FILE]`.
fn import_litellm(args: ImportArgs, ctx: &Ctx) -> Result<ExitCode, ExitCode> {
    let origin = args.litellm.display().to_string();
    let text = std::fs::read_to_string(&args.litellm).map_err(|e| fail(&origin, e))?;
    let effective = args.effective.unwrap_or_else(|| ctx.clock().now());
    let import = LitellmImport::from_json(&text, &origin, effective, &args.source)
        .map_err(|e| fail("import", e))?;
    // The file must load as `--prices` loads it: checked before anything is written.
    import
        .table()
        .and_then(|t| PriceTable::built_in()?.with_overrides(t))
        .map_err(|e| fail("import", e))?;
    let toml = import.to_toml();
    match &args.out {
        Some(path) => write_whole(path, &toml)?,
        None => {
            let code = print_all(&toml);
            if code != ExitCode::SUCCESS {
                return Err(code);
            }
        }
    }
    for unmapped in &import.unmapped {
        eprintln!("swarm: not mapped: {}: {}", unmapped.key, unmapped.reason);
    }
    eprintln!(
        "swarm: imported {} models from {origin}; {} entries not mapped",
        import.rows.len(),
        import.unmapped.len()
    );
    if args.json {
        let models: Vec<&str> = import.rows.iter().map(|r| r.model.as_str()).collect();
        println!(
            "{}",
            json!({
                "out": args.out.as_ref().map(|p| p.display().to_string()),
                "effective": effective.to_rfc3339(),
                "rows": import.rows.len(),
                "models": models,
                "unmapped": import.unmapped,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path` whole: to a temporary file beside it, then
/// renamed over it, so a failed write never leaves half a table.
fn write_whole(path: &std::path::Path, text: &str) -> Result<(), ExitCode> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prices.toml".to_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let shown = path.display().to_string();
    if let Err(e) = std::fs::write(&tmp, text) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(&shown, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(&shown, e)
    })
}

/// An exact decimal amount of dollars (`0.25`).
fn parse_usd(text: &str) -> Result<Money, String> {
    Money::parse(text).map_err(|e| e.to_string())
}

/// `YYYY-MM-DD` (00:00 UTC) or RFC 3339.
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is not YYYY-MM-DD or an RFC 3339 time"))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn times_parse_as_dates_or_rfc3339() {
        assert_eq!(
            parse_time("2025-09-29").unwrap().to_rfc3339(),
            "2025-09-29T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2025-09-05T18:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2025-09-05T16:00:00+00:00"
        );
        assert!(parse_time("yesterday").is_err());
    }
}
