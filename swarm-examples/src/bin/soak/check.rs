//! The soak's checks and report: the exact account of every task, the
//! findings stored, the raw keys adopted, the ledger against the mock
//! Anthropic server's usage, and the librarian's part, as a [`SoakReport`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use swarmbus_agents::runtime::task_finding_id;
use swarmbus_core::TaskFailure;
use swarmbus_core::TaskId;
use swarmbus_core::bus::{FindingStore, TaskQueue};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, Tiers};
use swarmbus_redis::RedisBus;

use crate::fleet::vm_hwm_kb;
use crate::librarian::LibrarianReport;
use crate::{AnyError, MemorySample, Pushed, Rig, Settings, Stopped, lock, redis_info};

/// The report of a run: printed, and written as JSON with `--report`.
#[derive(Debug, Serialize)]
pub(crate) struct SoakReport {
    settings: Settings,
    duration_s: f64,
    tasks_pushed: u64,
    tasks_completed: u64,
    tasks_failed_reported: u64,
    tasks_lost: u64,
    tasks_completed_and_failed: u64,
    findings_indexed: u64,
    findings_stored_twice: u64,
    raw_findings_written: u64,
    /// Raw keys found in the index of active findings at the end.
    raw_findings_adopted: u64,
    /// Raw keys this program's adopter joined to the index while running
    /// (the librarian's adopter may join others).
    raw_findings_adopted_by_this_adopter: u64,
    raw_findings_adopted_by_final_reindex: u64,
    ledger_tokens: u64,
    mock_usage_tokens: u64,
    ledger_equal: bool,
    ledger_tokens_all_workers: u64,
    mock_usage_tokens_all_workers: u64,
    ledger_tokens_of_killed_workers: u64,
    mock_usage_tokens_of_killed_workers: u64,
    ledger_entries: u64,
    mock_requests: u64,
    mock_messages_served: u64,
    injected_429: u64,
    injected_529: u64,
    injected_midstream_errors: u64,
    workers_killed: usize,
    workers_exited_by_themselves: Vec<String>,
    worker_processes_started: usize,
    redis_restarts: u32,
    connection_faults_injected: u64,
    findings_per_s: f64,
    tasks_per_s: f64,
    /// Completed tasks per second from the first push to the last finding.
    tasks_per_s_busy: f64,
    busy_s: f64,
    task_latency_p50_ms: f64,
    task_latency_p99_ms: f64,
    redis_used_memory_bytes: u64,
    redis_memory_per_finding_bytes: f64,
    /// Slope of used_memory over the finding count between the first and
    /// the last sample (bytes per finding); `None` without growth in
    /// findings.
    redis_memory_growth_per_finding_bytes: Option<f64>,
    redis_memory_samples: Vec<MemorySample>,
    librarian_queries_asked: u64,
    librarian_queries_answered: u64,
    /// Answered after the pool moved on from a shard the mock refused.
    librarian_queries_failed_over: u64,
    /// Answered with an error saying no shard could serve.
    librarian_queries_exhausted: u64,
    librarian_queries_failed_other: u64,
    librarian_queries_unanswered: u64,
    /// No shard got more requests in a minute (or day) than the pool was
    /// configured to send it.
    quota_never_over: bool,
    librarian: Option<LibrarianReport>,
    peak_rss_kb: BTreeMap<String, u64>,
    failure_kinds: BTreeMap<String, u64>,
    failure_reports_sample: Vec<String>,
    /// Every check passed.
    pub(crate) ok: bool,
}

/// Bytes of Redis memory per finding added, first sample to last.
fn memory_growth(samples: &[MemorySample]) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    let findings = last
        .findings
        .checked_sub(first.findings)
        .filter(|n| *n > 0)?;
    Some((last.used_memory as f64 - first.used_memory as f64) / findings as f64)
}

/// How many of the raw keys `finding:soak-raw-<i>` (i < n) are in the
/// library's index of active findings.
async fn raw_in_index(url: &str, n: u64) -> Result<u64, AnyError> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let mut found = 0;
    let ids: Vec<String> = (0..n).map(|i| format!("soak-raw-{i}")).collect();
    for chunk in ids.chunks(1000) {
        let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg("swarm:findings")
            .arg(chunk)
            .query_async(&mut c)
            .await?;
        found += scores.iter().filter(|s| s.is_some()).count() as u64;
    }
    Ok(found)
}

/// The value at `p` (0 to 1) of `sorted` (0 when empty).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The exact account of the pushed tasks.
struct TaskAccount {
    failures: Vec<TaskFailure>,
    completed: u64,
    /// Completed and reported failed.
    both: u64,
    lost: u64,
    failed_reported: u64,
    /// Finding time minus push time, sorted (ms).
    latencies: Vec<f64>,
    /// From the first push to the last finding (without the drain's
    /// polling or the shutdown); the whole work time without findings.
    busy_s: f64,
}

/// Every pushed task: completed with its finding, reported failed, both,
/// or lost.
async fn account_tasks(
    bus: &RedisBus,
    pushed: &Pushed,
    work_secs: f64,
) -> Result<TaskAccount, AnyError> {
    let failures = bus.failed_tasks().await?;
    let failed: HashSet<TaskId> = failures.iter().map(|f| f.task.id).collect();
    let finding_ids: Vec<_> = pushed.ids.iter().map(|t| task_finding_id(*t)).collect();
    let (mut completed, mut both, mut lost) = (0u64, 0u64, 0u64);
    let mut latencies = Vec::new();
    let mut last_finding_at = None;
    for (chunk_ids, chunk_tasks) in finding_ids.chunks(500).zip(pushed.ids.chunks(500)) {
        let got = bus.get_findings(chunk_ids).await?;
        for (f, t) in got.into_iter().zip(chunk_tasks) {
            match (f, failed.contains(t)) {
                (Some(f), is_failed) => {
                    completed += 1;
                    if is_failed {
                        both += 1;
                    }
                    last_finding_at = last_finding_at.max(Some(f.created_at));
                    if let Some(at) = pushed.at.get(t) {
                        let ms = (f.created_at - *at).num_microseconds().unwrap_or(0);
                        latencies.push(ms as f64 / 1000.0);
                    }
                }
                (None, true) => {}
                (None, false) => lost += 1,
            }
        }
    }
    let first_push_at = pushed.ids.first().and_then(|t| pushed.at.get(t)).copied();
    let busy_s = match (first_push_at, last_finding_at) {
        (Some(a), Some(b)) if b > a => (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => work_secs,
    };
    let failed_n = pushed.ids.iter().filter(|t| failed.contains(t)).count() as u64;
    latencies.sort_by(f64::total_cmp);
    Ok(TaskAccount {
        failures,
        completed,
        both,
        lost,
        failed_reported: failed_n.saturating_sub(both),
        latencies,
        busy_s,
    })
}

/// The ledger's tokens against the mock's usage, per worker process:
/// those never killed must be equal.
struct LedgerAccount {
    entries: u64,
    ledger_ok: u64,
    mock_ok: u64,
    ledger_killed: u64,
    mock_killed: u64,
    /// Ledger tokens of workers the fleet never started (must be 0).
    unknown_ledger: u64,
    mock_all: u64,
    equal: bool,
}

/// Reads the ledger and compares it with the mock's usage per API key.
async fn account_ledger(rig: &Rig) -> Result<LedgerAccount, AnyError> {
    let ledger = Accountant::new(
        Arc::clone(&rig.bus),
        Arc::new(PriceTable::built_in()?),
        Tiers::default(),
        BudgetLimits::unlimited(),
    )?;
    let entries = ledger.ledger().entries().await?;
    let mut ledger_by_worker: HashMap<String, u64> = HashMap::new();
    for e in &entries.entries {
        let who = e.worker.as_ref().map(|w| w.to_string()).unwrap_or_default();
        *ledger_by_worker.entry(who).or_default() += e.usage.input_tokens + e.usage.output_tokens;
    }
    let mock_by_key = lock(&rig.stats.usage_by_key).clone();
    let f = lock(&rig.fleet);
    let killed: HashSet<&String> = f.killed.iter().collect();
    let (mut ledger_ok, mut mock_ok, mut ledger_killed, mut mock_killed) = (0, 0, 0, 0);
    for id in &f.started {
        let l = ledger_by_worker.get(id).copied().unwrap_or(0);
        let m = mock_by_key.get(&format!("soak-{id}")).copied().unwrap_or(0);
        if killed.contains(id) {
            ledger_killed += l;
            mock_killed += m;
        } else {
            ledger_ok += l;
            mock_ok += m;
        }
    }
    let unknown_ledger: u64 = ledger_by_worker
        .iter()
        .filter(|(k, _)| !f.started.contains(k))
        .map(|(_, v)| v)
        .sum();
    Ok(LedgerAccount {
        entries: entries.entries.len() as u64,
        ledger_ok,
        mock_ok,
        ledger_killed,
        mock_killed,
        unknown_ledger,
        mock_all: mock_by_key.values().sum(),
        equal: ledger_ok == mock_ok && unknown_ledger == 0,
    })
}

/// Peak RSS of every process of the run: the workers, redis-server (after
/// its restart), this program with its mocks, and the librarian.
async fn peak_rss(
    rig: &Rig,
    lib: Option<&LibrarianReport>,
) -> Result<BTreeMap<String, u64>, AnyError> {
    let mut peak = lock(&rig.fleet).peak_rss_kb.clone();
    let redis_pid_now = redis_info(&rig.url, "server", "process_id").await? as u32;
    if let Some(kb) = vm_hwm_kb(redis_pid_now) {
        peak.insert(
            format!("redis-server (pid {redis_pid_now}, after restart)"),
            kb,
        );
    }
    if let Some(kb) = vm_hwm_kb(std::process::id()) {
        peak.insert("soak coordinator + mocks".into(), kb);
    }
    if let Some(l) = lib {
        peak.insert("librarian".into(), l.librarian_peak_rss_kb);
    }
    Ok(peak)
}

/// Checks: the exact account of the tasks, the findings stored, the raw
/// keys adopted, the ledger against the mock, and the librarian's queries
/// and quotas, as the report.
pub(crate) async fn check(
    rig: &Rig,
    settings: &Settings,
    pushed: &Pushed,
    stopped: Stopped,
    work_secs: f64,
) -> Result<SoakReport, AnyError> {
    let tasks = account_tasks(&rig.bus, pushed, work_secs).await?;
    let findings_indexed = rig.bus.count_findings().await?;
    let raw_written = stopped.raw_written;
    // Raw keys in the index: adopted by this program's adopter or by
    // another one (`swarm librarian serve` runs one too); adopting again
    // changes nothing, so each raw key counts once.
    let raw_adopted = raw_in_index(&rig.url, raw_written).await?;
    let stored_twice = findings_indexed.saturating_sub(tasks.completed + raw_adopted);
    let ledger = account_ledger(rig).await?;
    let used_memory = redis_info(&rig.url, "memory", "used_memory").await?;
    let lib = stopped.librarian;
    let peak = peak_rss(rig, lib.as_ref()).await?;
    let n_lib = |f: fn(&LibrarianReport) -> u64| lib.as_ref().map_or(0, f);
    let quota_never_over = lib.as_ref().is_none_or(|l| l.quota_never_over);
    let lib_unanswered = n_lib(|l| l.queries_unanswered);
    let lib_failed_other = n_lib(|l| l.queries_failed_other);
    let ok = tasks.lost == 0
        && stored_twice == 0
        && tasks.both == 0
        && ledger.equal
        && raw_adopted == raw_written
        && quota_never_over
        && lib_unanswered == 0
        && lib_failed_other == 0;
    let f = lock(&rig.fleet);
    let stats = &rig.stats;
    let lat = &tasks.latencies;
    let completed = tasks.completed;
    Ok(SoakReport {
        settings: settings.clone(),
        duration_s: work_secs,
        tasks_pushed: pushed.ids.len() as u64,
        tasks_completed: completed,
        tasks_failed_reported: tasks.failed_reported,
        tasks_lost: tasks.lost,
        tasks_completed_and_failed: tasks.both,
        findings_indexed,
        findings_stored_twice: stored_twice,
        raw_findings_written: raw_written,
        raw_findings_adopted: raw_adopted,
        raw_findings_adopted_by_this_adopter: stopped.adopted_live,
        raw_findings_adopted_by_final_reindex: stopped.adopted_at_end,
        ledger_tokens: ledger.ledger_ok,
        mock_usage_tokens: ledger.mock_ok,
        ledger_equal: ledger.equal,
        ledger_tokens_all_workers: ledger.ledger_ok + ledger.ledger_killed + ledger.unknown_ledger,
        mock_usage_tokens_all_workers: ledger.mock_all,
        ledger_tokens_of_killed_workers: ledger.ledger_killed,
        mock_usage_tokens_of_killed_workers: ledger.mock_killed,
        ledger_entries: ledger.entries,
        mock_requests: stats.requests.load(Ordering::Relaxed),
        mock_messages_served: stats.served.load(Ordering::Relaxed),
        injected_429: stats.injected_429.load(Ordering::Relaxed),
        injected_529: stats.injected_529.load(Ordering::Relaxed),
        injected_midstream_errors: stats.injected_midstream.load(Ordering::Relaxed),
        workers_killed: f.killed.len(),
        workers_exited_by_themselves: f.exited.clone(),
        worker_processes_started: f.started.len(),
        redis_restarts: stopped.restarts as u32,
        connection_faults_injected: rig.proxy.injected(),
        findings_per_s: (completed + raw_adopted) as f64 / work_secs,
        tasks_per_s: completed as f64 / work_secs,
        tasks_per_s_busy: completed as f64 / tasks.busy_s.max(1e-3),
        busy_s: tasks.busy_s,
        task_latency_p50_ms: percentile(lat, 0.5),
        task_latency_p99_ms: percentile(lat, 0.99),
        redis_used_memory_bytes: used_memory,
        redis_memory_per_finding_bytes: used_memory as f64 / findings_indexed.max(1) as f64,
        redis_memory_growth_per_finding_bytes: memory_growth(&stopped.memory_samples),
        redis_memory_samples: stopped.memory_samples,
        librarian_queries_asked: n_lib(|l| l.queries_asked),
        librarian_queries_answered: n_lib(|l| l.queries_answered),
        librarian_queries_failed_over: n_lib(|l| l.queries_failed_over),
        librarian_queries_exhausted: n_lib(|l| l.queries_exhausted),
        librarian_queries_failed_other: lib_failed_other,
        librarian_queries_unanswered: lib_unanswered,
        quota_never_over,
        librarian: lib,
        peak_rss_kb: peak,
        failure_kinds: failure_kinds(&tasks.failures),
        failure_reports_sample: failure_sample(&tasks.failures),
        ok,
    })
}

/// Every kind of failure report but 429 in full (up to 20), and two 429s.
fn failure_sample(failures: &[TaskFailure]) -> Vec<String> {
    let is_429 = |f: &&TaskFailure| f.report.contains("HTTP 429");
    failures
        .iter()
        .filter(|f| !is_429(f))
        .take(20)
        .chain(failures.iter().filter(is_429).take(2))
        .map(|f| f.report.clone())
        .collect()
}

/// Report: the summary lines after the JSON.
pub(crate) fn print_summary(report: &SoakReport) {
    println!(
        "soak {}: pushed {}, completed {}, failed and reported {}, LOST {}, stored twice {}, ledger {} vs mock {} ({})",
        if report.ok { "PASSED" } else { "FAILED" },
        report.tasks_pushed,
        report.tasks_completed,
        report.tasks_failed_reported,
        report.tasks_lost,
        report.findings_stored_twice,
        report.ledger_tokens,
        report.mock_usage_tokens,
        if report.ledger_equal {
            "equal"
        } else {
            "NOT EQUAL"
        }
    );
    if report.librarian.is_some() {
        println!(
            "librarian: asked {}, answered {} ({} after a failover), exhausted {}, failed otherwise {}, UNANSWERED {}; quota {}; Redis memory {} per finding",
            report.librarian_queries_asked,
            report.librarian_queries_answered,
            report.librarian_queries_failed_over,
            report.librarian_queries_exhausted,
            report.librarian_queries_failed_other,
            report.librarian_queries_unanswered,
            if report.quota_never_over {
                "never over"
            } else {
                "OVER"
            },
            report
                .redis_memory_growth_per_finding_bytes
                .map_or_else(|| "n/a".to_owned(), |b| format!("+{b:.0} B")),
        );
    }
}

/// Failure reports counted by what stopped the task.
fn failure_kinds(failures: &[swarmbus_core::TaskFailure]) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for f in failures {
        let r = f.report.to_ascii_lowercase();
        let kind = if r.contains("http 429") || r.contains("rate_limited") {
            "rate limited (429)"
        } else if r.contains("529") || r.contains("overloaded") {
            "overloaded (529 or stream error), retries exhausted"
        } else if r.contains("deliver") {
            "delivery limit"
        } else {
            "other"
        };
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    kinds
}

/// Writes the JSON report to `path`, creating its directory.
pub(crate) fn write_report(path: &Path, json: &str) -> Result<(), AnyError> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, json)?;
    Ok(())
}
