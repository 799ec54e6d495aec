//! `swarm findings list|show|put|update|delete|expire|reindex|check|export|import`:
//! the MCP tools' twins for agents that only have a shell, the lifecycle
//! (versions, tombstones, expiry) and the index's maintenance.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::ctx::{BusUse, Ctx, fail};
use crate::ops::{self, NewFinding, Search};

/// Finding commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum FindingsCmd {
    /// List findings, newest first (one page; `--cursor` for the next).
    List(ListArgs),
    /// Print one finding in full.
    Show(ShowArgs),
    /// Store a finding; prints its id and key. The body comes from `--body`,
    /// else from stdin (`-` or piped).
    Put(PutArgs),
    /// Adopt `finding:<id>` keys written around the library (redis-cli,
    /// Python) into the index, by incremental SCAN: resumable, a few
    /// milliseconds of Redis per step; a progress line on a terminal.
    Reindex(ReindexArgs),
    /// Compare the search index with the findings: missing, stale and
    /// orphaned documents; `--repair` fixes them and compacts the postings
    /// of retired documents. Exit status 1 when they differ (and were not
    /// repaired).
    Check(CheckArgs),
    /// Store a new version of a finding (what is not given stays; the old
    /// version is kept and `show --version N` prints it).
    Update(UpdateArgs),
    /// Delete a finding: gone from counts, listings and searches, kept as a
    /// tombstone with its last version (`show --history`, `export`).
    Delete(DeleteArgs),
    /// Set when findings are deleted: by id or for a whole session
    /// (`--ttl SECONDS`, `--at RFC3339` or `--clear`).
    Expire(ExpireArgs),
    /// Write every finding (archived too) as JSON Lines on stdout: one
    /// finding per line in the library's JSON (the `finding:<id>` value),
    /// oldest first, then one `{"history": …}` line per finding with
    /// replaced versions or a tombstone. The format is stable: `import`
    /// reads it back.
    Export(ExportArgs),
    /// Read JSON Lines (as `export` writes them) from a file or stdin (`-`)
    /// and store the findings, 1,000 per write; ones already stored with
    /// the same content count as present. Prints how many were new.
    Import(ImportArgs),
}

/// `swarm findings update`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    /// The finding's id (`<id>` or `finding:<id>`).
    id: String,
    /// A new one-line summary.
    #[arg(long)]
    title: Option<String>,
    /// A new body; `-` reads it from stdin.
    #[arg(long)]
    body: Option<String>,
    /// New tags, replacing the old ones (repeat for several).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// A finding this version builds on (repeat; added to the old ones).
    #[arg(long = "cite")]
    cites: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `swarm findings delete`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    /// The findings' ids.
    #[arg(required = true)]
    ids: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `swarm findings expire`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["ttl", "at", "clear"])))]
#[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "session"])))]
pub(crate) struct ExpireArgs {
    /// The findings' ids.
    ids: Vec<String>,
    /// Every finding of this session stored now.
    #[arg(long)]
    session: Option<String>,
    /// Delete them this many seconds from now.
    #[arg(long)]
    ttl: Option<u64>,
    /// Delete them at this time (RFC 3339).
    #[arg(long)]
    at: Option<String>,
    /// Keep them (clears an expiry time).
    #[arg(long)]
    clear: bool,
}

/// `swarm findings export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// Leave out archived findings.
    #[arg(long)]
    active_only: bool,
}

/// `swarm findings import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The JSON Lines file; `-` for stdin.
    file: String,
}

/// `swarm findings check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Fix what differs.
    #[arg(long)]
    repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `swarm findings reindex`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReindexArgs {
    /// Keys asked of SCAN per step (1 to 2000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=2000))]
    batch: u64,
    /// Start a new pass from the beginning instead of resuming where the last
    /// (interrupted) one stopped.
    #[arg(long)]
    restart: bool,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

/// `swarm findings list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Words that must all appear in the title, body or tags.
    #[arg(long, short)]
    query: Option<String>,
    /// Only findings with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only findings of this session.
    #[arg(long)]
    session: Option<String>,
    /// Only findings of this worker.
    #[arg(long)]
    worker: Option<String>,
    /// Findings per page (1 to 100).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    limit: u32,
    /// The next cursor a previous page printed.
    #[arg(long)]
    cursor: Option<String>,
    /// Print the page as JSON.
    #[arg(long)]
    json: bool,
}

/// `swarm findings show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The finding's id (`<id>` or `finding:<id>`).
    id: String,
    /// Print this version (1 is the first; a deleted finding's too).
    #[arg(long)]
    version: Option<u32>,
    /// Print every kept version and the tombstone, as JSON.
    #[arg(long, conflicts_with = "version")]
    history: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `swarm findings put`.
#[derive(Debug, clap::Args)]
pub(crate) struct PutArgs {
    /// One-line summary.
    #[arg(long)]
    title: String,
    /// The finding's text; `-` or absent reads it from stdin (when stdin is
    /// not a terminal).
    #[arg(long)]
    body: Option<String>,
    /// A tag (repeat for several).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// The session (default `claude-code`).
    #[arg(long, env = "SWARM_SESSION")]
    session: Option<String>,
    /// Who found it (default `claude-code`).
    #[arg(long, env = "SWARM_WORKER")]
    worker: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a finding command.
pub(crate) async fn run(cmd: FindingsCmd, ctx: &Ctx) -> ExitCode {
    if let FindingsCmd::Reindex(a) = cmd {
        return reindex(a, ctx).await;
    }
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    match cmd {
        FindingsCmd::List(a) => {
            let search = Search {
                query: a.query,
                tag: a.tag,
                session: a.session,
                worker: a.worker,
                limit: usize::try_from(a.limit).ok(),
                cursor: a.cursor,
            };
            let page = match ops::search_findings(&bus, &search, |id| ctx.finding_key(id)).await {
                Ok(p) => p,
                Err(e) => return fail("findings list", e),
            };
            if a.json {
                println!("{}", serde_json::to_value(&page).unwrap_or_default());
                return ExitCode::SUCCESS;
            }
            for f in &page.findings {
                let tags = f["tags"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                println!(
                    "{}  {}  [{}] {}  {}",
                    f["id"].as_str().unwrap_or(""),
                    f["created_at"].as_str().unwrap_or(""),
                    f["worker"].as_str().unwrap_or(""),
                    f["title"].as_str().unwrap_or(""),
                    if tags.is_empty() {
                        String::new()
                    } else {
                        format!("#{tags}")
                    }
                );
            }
            for u in &page.unreadable {
                eprintln!("swarm: unreadable: {u}");
            }
            match &page.next_cursor {
                Some(c) => eprintln!(
                    "({} of {} shown; next page: --cursor {c})",
                    page.findings.len(),
                    page.total
                ),
                None => eprintln!("({} findings)", page.total),
            }
            ExitCode::SUCCESS
        }
        FindingsCmd::Show(a) if a.history || a.version.is_some() => show_past(a, &bus, ctx).await,
        FindingsCmd::Show(a) => match ops::get_finding(&bus, &a.id).await {
            Ok(f) if a.json => {
                println!("{}", ops::finding_json(&f, &ctx.finding_key(&f.id)));
                ExitCode::SUCCESS
            }
            Ok(f) => {
                println!("{}  ({})", f.title, ctx.finding_key(&f.id));
                println!(
                    "by {} in {} at {}{}",
                    f.worker,
                    f.session,
                    f.created_at.to_rfc3339(),
                    if f.tags.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", tags: {}",
                            f.tags.iter().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }
                );
                println!();
                println!("{}", f.body);
                ExitCode::SUCCESS
            }
            Err(e) => fail("findings show", e),
        },
        FindingsCmd::Put(a) => put(a, &bus, ctx).await,
        FindingsCmd::Reindex(a) => reindex(a, ctx).await,
        FindingsCmd::Check(a) => check(a, &bus).await,
        FindingsCmd::Update(a) => update_cmd(a, &bus, ctx).await,
        FindingsCmd::Delete(a) => delete_cmd(a, &bus).await,
        FindingsCmd::Expire(a) => expire_cmd(a, &bus).await,
        FindingsCmd::Export(a) => export(a, &bus).await,
        FindingsCmd::Import(a) => import(a, &bus).await,
    }
}

async fn export(a: ExportArgs, bus: &Arc<dyn swarmbus_core::Bus>) -> ExitCode {
    use std::io::Write;
    let mut filter = swarmbus_core::FindingFilter::all();
    filter.include_archived = !a.active_only;
    let listing = match bus.list_findings(&filter).await {
        Ok(l) => l,
        Err(e) => return fail("findings export", format!("{e}")),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for f in &listing.findings {
        let line = match serde_json::to_string(f) {
            Ok(l) => l,
            Err(e) => return fail("findings export", format!("{}: {e}", f.id)),
        };
        if writeln!(out, "{line}").is_err() {
            return fail("findings export", "cannot write stdout");
        }
    }
    let histories = match bus.finding_histories().await {
        Ok(h) => h,
        Err(e) => return fail("findings export", format!("{e}")),
    };
    for h in &histories {
        let line = match serde_json::to_string(&json!({ "history": h })) {
            Ok(l) => l,
            Err(e) => return fail("findings export", format!("{}: {e}", h.id)),
        };
        if writeln!(out, "{line}").is_err() {
            return fail("findings export", "cannot write stdout");
        }
    }
    if out.flush().is_err() {
        return fail("findings export", "cannot write stdout");
    }
    for u in &listing.unreadable {
        eprintln!("swarm: unreadable, not exported: {u}");
    }
    eprintln!(
        "({} findings and {} histories exported)",
        listing.findings.len(),
        histories.len()
    );
    ExitCode::SUCCESS
}

async fn import(a: ImportArgs, bus: &Arc<dyn swarmbus_core::Bus>) -> ExitCode {
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = if a.file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        match std::fs::File::open(&a.file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => return fail("findings import", format!("{}: {e}", a.file)),
        }
    };
    let (mut new, mut read) = (0usize, 0usize);
    let mut batch: Vec<swarmbus_core::Finding> = Vec::with_capacity(1000);
    // Written after the findings: a history may delete one of them.
    let mut histories: Vec<swarmbus_core::FindingHistory> = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail("findings import", format!("line {}: {e}", n + 1)),
        };
        if line.trim().is_empty() {
            continue;
        }
        if line.trim_start().starts_with("{\"history\"") {
            #[derive(serde::Deserialize)]
            struct Line {
                history: swarmbus_core::FindingHistory,
            }
            match serde_json::from_str::<Line>(&line) {
                Ok(l) => histories.push(l.history),
                Err(e) => {
                    return fail(
                        "findings import",
                        format!(
                            "line {}: not a history ({e}); nothing after it was stored",
                            n + 1
                        ),
                    );
                }
            }
            continue;
        }
        match serde_json::from_str::<swarmbus_core::Finding>(&line) {
            Ok(f) => batch.push(f),
            Err(e) => {
                return fail(
                    "findings import",
                    format!(
                        "line {}: not a finding ({e}); nothing after it was stored",
                        n + 1
                    ),
                );
            }
        }
        read += 1;
        if batch.len() == 1000 {
            match bus.put_findings(&batch).await {
                Ok(k) => new += k,
                Err(e) => return fail("findings import", format!("{e} (after {new} new)")),
            }
            batch.clear();
        }
    }
    if !batch.is_empty() {
        match bus.put_findings(&batch).await {
            Ok(k) => new += k,
            Err(e) => return fail("findings import", format!("{e} (after {new} new)")),
        }
    }
    let mut restored = 0usize;
    for h in &histories {
        match bus.restore_history(h).await {
            Ok(true) => restored += 1,
            Ok(false) => {}
            Err(e) => return fail("findings import", format!("history of {}: {e}", h.id)),
        }
    }
    println!(
        "{new} new of {read} read; {restored} of {} histories restored",
        histories.len()
    );
    ExitCode::SUCCESS
}

async fn check(a: CheckArgs, bus: &Arc<dyn swarmbus_core::Bus>) -> ExitCode {
    let report = match bus.check_index(a.repair).await {
        Ok(r) => r,
        Err(e) => return fail("findings check", format!("{e}")),
    };
    if a.json {
        println!("{}", serde_json::to_value(&report).unwrap_or_default());
    } else {
        println!(
            "{} findings, {} indexed: {} missing, {} stale, {} orphaned, {} retired documents awaiting compaction{}",
            report.findings,
            report.indexed,
            report.missing.len(),
            report.stale.len(),
            report.orphaned.len(),
            report.dead_postings,
            if report.repaired { " (repaired)" } else { "" }
        );
        for (what, ids) in [
            ("missing", &report.missing),
            ("stale", &report.stale),
            ("orphaned", &report.orphaned),
        ] {
            for id in ids.iter().take(20) {
                println!("  {what}: {id}");
            }
        }
    }
    if report.is_consistent() || report.repaired {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn put(a: PutArgs, bus: &Arc<dyn swarmbus_core::Bus>, ctx: &Ctx) -> ExitCode {
    let body = match a.body.as_deref() {
        Some("-") | None => {
            use std::io::IsTerminal;
            if a.body.is_none() && std::io::stdin().is_terminal() {
                String::new()
            } else {
                // Read at most one byte over the limit: enough to refuse.
                let mut buf = Vec::new();
                let limit = u64::try_from(ops::MAX_BODY_BYTES).unwrap_or(u64::MAX);
                if let Err(e) = std::io::stdin()
                    .take(limit.saturating_add(1))
                    .read_to_end(&mut buf)
                {
                    return fail("findings put", format!("cannot read stdin: {e}"));
                }
                if buf.len() > ops::MAX_BODY_BYTES {
                    return fail(
                        "findings put",
                        format!(
                            "the body on stdin is over the limit of {} bytes: summarise it, or split it into several findings",
                            ops::MAX_BODY_BYTES
                        ),
                    );
                }
                match String::from_utf8(buf) {
                    Ok(s) => s,
                    Err(_) => return fail("findings put", "the body on stdin is not UTF-8"),
                }
            }
        }
        Some(b) => b.to_owned(),
    };
    let new = NewFinding {
        title: a.title,
        body,
        tags: a.tags,
        session: a.session,
        worker: a.worker,
        task: None,
    };
    match ops::put_finding(bus, &new).await {
        Ok(f) => {
            let key = ctx.finding_key(&f.id);
            if a.json {
                println!("{}", json!({"id": f.id.to_string(), "key": key}));
            } else {
                println!("{key}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("findings put", e),
    }
}

async fn reindex(a: ReindexArgs, ctx: &Ctx) -> ExitCode {
    use std::io::IsTerminal;
    if ctx.is_memory() {
        return fail(
            "findings reindex",
            "the in-process bus has no keys written around the library: reindex a Redis",
        );
    }
    if let Err(e) = ctx.bus(BusUse::ONE_SHOT).await {
        return fail("cannot open the bus", e);
    }
    let Some(redis) = ctx.redis() else {
        return fail("findings reindex", "the bus is not Redis");
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let batch = usize::try_from(a.batch).unwrap_or(swarmbus_redis::MAX_REINDEX_BATCH);
    let mut cursor = a.restart.then(swarmbus_redis::ReindexCursor::start);
    let (mut adopted, mut scanned, mut steps) = (0u64, 0u64, 0u64);
    let mut unreadable = Vec::new();
    loop {
        let step = match redis.reindex_findings(cursor, batch).await {
            Ok(s) => s,
            Err(e) => {
                bar.abandon();
                return fail(
                    "findings reindex",
                    format!("{e} (run it again to resume where it stopped)"),
                );
            }
        };
        steps = steps.saturating_add(1);
        adopted = adopted.saturating_add(step.adopted);
        scanned = scanned.saturating_add(step.scanned);
        unreadable.extend(step.unreadable.iter().map(ToString::to_string));
        bar.set_message(format!(
            "{scanned} finding keys scanned, {adopted} adopted, {} unreadable",
            unreadable.len()
        ));
        bar.tick();
        match step.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    bar.finish_and_clear();
    if a.json {
        println!(
            "{}",
            json!({"scanned": scanned, "adopted": adopted, "steps": steps, "unreadable": unreadable})
        );
    } else {
        println!("{scanned} finding keys scanned, {adopted} adopted into the index");
        for u in &unreadable {
            println!("  unreadable: {u}");
        }
    }
    ExitCode::SUCCESS
}

/// The error for an id that holds no finding.
pub(crate) fn unknown(id: &swarmbus_core::FindingId) -> String {
    format!(
        "no finding with id {id} (never stored, or deleted); search_findings lists the ones that exist"
    )
}

/// A change to a finding: what is `None` stays.
#[derive(Debug, Default)]
pub(crate) struct Change {
    pub(crate) title: Option<String>,
    pub(crate) body: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) cites: Vec<swarmbus_core::FindingId>,
}

impl Change {
    /// The new version of `current`, made at `now`, checked like a put.
    pub(crate) fn apply(
        self,
        current: &swarmbus_core::Finding,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<swarmbus_core::Finding, String> {
        if self.title.is_none()
            && self.body.is_none()
            && self.tags.is_none()
            && self.cites.is_empty()
        {
            return Err("nothing to change: give a title, body, tags or cites".into());
        }
        let new = NewFinding {
            title: self.title.unwrap_or_else(|| current.title.clone()),
            body: self.body.unwrap_or_else(|| current.body.clone()),
            tags: self
                .tags
                .unwrap_or_else(|| current.tags.iter().cloned().collect()),
            session: Some(current.session.to_string()),
            worker: Some(current.worker.to_string()),
            task: current.task,
        };
        let built = new.build()?;
        let mut cites = current.cites.clone();
        for c in self.cites {
            if !cites.contains(&c) {
                cites.push(c);
            }
        }
        let mut revised = current.clone();
        revised.title = built.title;
        revised.body = built.body;
        revised.tags = built.tags;
        revised.tokens = built.tokens;
        revised.cites = cites;
        revised.created_at = now;
        Ok(revised)
    }
}

/// Stores a new version; errors worded for an agent.
pub(crate) async fn update(
    bus: &Arc<dyn swarmbus_core::Bus>,
    revised: &swarmbus_core::Finding,
) -> Result<u32, String> {
    match bus.update_finding(revised).await {
        Ok(v) => Ok(v),
        Err(swarmbus_core::Error::NotFound { .. }) => Err(unknown(&revised.id)),
        Err(e) => Err(format!("cannot update finding:{}: {e}", revised.id)),
    }
}

/// Deletes a finding; errors worded for an agent.
pub(crate) async fn delete(
    bus: &Arc<dyn swarmbus_core::Bus>,
    id: &swarmbus_core::FindingId,
) -> Result<swarmbus_core::Tombstone, String> {
    match bus.delete_finding(id, chrono::Utc::now()).await {
        Ok(t) => Ok(t),
        Err(swarmbus_core::Error::NotFound { .. }) => Err(unknown(id)),
        Err(e) => Err(format!("cannot delete finding:{id}: {e}")),
    }
}

async fn update_cmd(a: UpdateArgs, bus: &Arc<dyn swarmbus_core::Bus>, ctx: &Ctx) -> ExitCode {
    let id = match ops::finding_id(&a.id) {
        Ok(id) => id,
        Err(e) => return fail("findings update", e),
    };
    let current = match bus.get_finding(&id).await {
        Ok(Some(f)) => f,
        Ok(None) => return fail("findings update", unknown(&id)),
        Err(e) => {
            return fail(
                "findings update",
                format!("finding:{id} cannot be read: {e}"),
            );
        }
    };
    let body = match a.body.as_deref() {
        Some("-") => {
            let mut buf = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut buf) {
                return fail("findings update", format!("cannot read stdin: {e}"));
            }
            Some(buf)
        }
        other => other.map(str::to_owned),
    };
    let mut cites = Vec::new();
    for c in &a.cites {
        match ops::finding_id(c) {
            Ok(id) => cites.push(id),
            Err(e) => return fail("findings update", e),
        }
    }
    let change = Change {
        title: a.title,
        body,
        tags: (!a.tags.is_empty()).then_some(a.tags),
        cites,
    };
    let revised = match change.apply(&current, chrono::Utc::now()) {
        Ok(r) => r,
        Err(e) => return fail("findings update", e),
    };
    match update(bus, &revised).await {
        Ok(v) => {
            let key = ctx.finding_key(&id);
            if a.json {
                println!(
                    "{}",
                    json!({"id": id.to_string(), "key": key, "version": v})
                );
            } else {
                println!("{key} version {v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("findings update", e),
    }
}

async fn delete_cmd(a: DeleteArgs, bus: &Arc<dyn swarmbus_core::Bus>) -> ExitCode {
    for raw in &a.ids {
        let id = match ops::finding_id(raw) {
            Ok(id) => id,
            Err(e) => return fail("findings delete", e),
        };
        match delete(bus, &id).await {
            Ok(t) if a.json => println!("{}", serde_json::to_value(&t).unwrap_or_default()),
            Ok(t) => println!(
                "{id} deleted at {} (version {} kept)",
                t.removed_at.to_rfc3339(),
                t.version
            ),
            Err(e) => return fail("findings delete", e),
        }
    }
    ExitCode::SUCCESS
}

async fn expire_cmd(a: ExpireArgs, bus: &Arc<dyn swarmbus_core::Bus>) -> ExitCode {
    let now = chrono::Utc::now();
    let at = match (a.ttl, a.at.as_deref(), a.clear) {
        (Some(s), _, _) => match i64::try_from(s)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
        {
            Some(d) => Some(now + d),
            None => return fail("findings expire", "--ttl is too large"),
        },
        (None, Some(t), _) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(e) => return fail("findings expire", format!("--at {t}: {e}")),
        },
        _ => None,
    };
    let set = if let Some(s) = a.session.as_deref() {
        let session = match swarmbus_core::SessionId::new(s) {
            Ok(s) => s,
            Err(e) => return fail("findings expire", format!("--session: {e}")),
        };
        bus.expire_session(&session, at).await
    } else {
        let mut ids = Vec::with_capacity(a.ids.len());
        for raw in &a.ids {
            match ops::finding_id(raw) {
                Ok(id) => ids.push(id),
                Err(e) => return fail("findings expire", e),
            }
        }
        bus.expire_findings(&ids, at).await
    };
    match set {
        Ok(n) => {
            match at {
                Some(t) => println!("{n} findings expire at {}", t.to_rfc3339()),
                None => println!("{n} findings no longer expire"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("findings expire", format!("{e}")),
    }
}

async fn show_past(a: ShowArgs, bus: &Arc<dyn swarmbus_core::Bus>, ctx: &Ctx) -> ExitCode {
    let id = match ops::finding_id(&a.id) {
        Ok(id) => id,
        Err(e) => return fail("findings show", e),
    };
    let history = match bus.finding_history(&id).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            return fail(
                "findings show",
                format!("no finding with id {id} was ever stored"),
            );
        }
        Err(e) => return fail("findings show", format!("{e}")),
    };
    if a.history {
        println!("{}", serde_json::to_value(&history).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let n = a.version.unwrap_or(1);
    let current = match history.current {
        Some(c) if c == n => bus.get_finding(&id).await.ok().flatten(),
        _ => None,
    };
    match history.version(n, current.as_ref()) {
        Some(f) if a.json => {
            let mut v = ops::finding_json(&f, &ctx.finding_key(&f.id));
            if let Some(o) = v.as_object_mut() {
                o.insert("version".into(), json!(n));
                o.insert("current".into(), json!(history.current == Some(n)));
            }
            println!("{v}");
            ExitCode::SUCCESS
        }
        Some(f) => {
            println!("{}  ({} version {n})", f.title, ctx.finding_key(&f.id));
            println!(
                "by {} in {} at {}",
                f.worker,
                f.session,
                f.created_at.to_rfc3339()
            );
            println!();
            println!("{}", f.body);
            ExitCode::SUCCESS
        }
        None => fail(
            "findings show",
            format!(
                "finding {id} has no version {n} (versions kept: {}; current: {})",
                history
                    .versions
                    .iter()
                    .map(|v| v.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                history
                    .current
                    .map_or_else(|| "deleted".to_owned(), |c| c.to_string())
            ),
        ),
    }
}
