//! The soak's librarian part: a mock Gemini API that keeps Google's quotas
//! per key, the librarian daemon process (`swarm librarian serve` or this
//! program's own `soak librarian`), agents asking archive queries over the
//! bus, and the account of it all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::Serialize;
use swarmbus_agents::librarian::ask::{ask, wait_for};
use swarmbus_agents::runtime::task_finding_id;
use swarmbus_agents::{AnswerSource, LibrarianDaemon};
use swarmbus_core::bus::{Bus, FindingStore, QuotaLedger};
use swarmbus_core::quota::pacific_day;
use swarmbus_core::{ArchiveQuery, ArchiveResponse, FindingFilter, ResponseStatus};
use swarmbus_core::{QuotaLimits, ShardId, TaskId};
use swarmbus_gemini::pool::shards_from_env;
use swarmbus_gemini::{ClientConfig, PoolConfig, ShardPool};
use swarmbus_redis::RedisBus;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::{AnyError, bus_config, lock, percentile};

/// How the librarian part runs (`--no-librarian` turns it off).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LibrarianSettings {
    /// Shards of the pool (`--shards`), keys `fake-gemini-shard-<n>`.
    pub(crate) shards: u32,
    /// Requests per minute the pool is configured with, per shard
    /// (`--gemini-rpm`); the mock enforces the same on every shard but
    /// shard 1.
    pub(crate) rpm: u32,
    /// Requests per day the pool is configured with (`--gemini-rpd`); the
    /// mock enforces the same on every shard but shard 2.
    pub(crate) rpd: u32,
    /// Shard 1's real per-minute limit at the mock (`--gemini-rpm-low`):
    /// its project's quota is partly used elsewhere, so it answers per-minute
    /// 429s (reporting this `quotaValue`) before the pool's count is full.
    pub(crate) shard1_real_rpm: u32,
    /// Shard 2's real daily limit at the mock (`--gemini-rpd-low`): it
    /// answers a per-day 429 once this many were admitted today.
    pub(crate) shard2_real_rpd: u32,
    /// Share of requests answered 503 UNAVAILABLE (`--gemini-503-rate`).
    pub(crate) rate_503: f64,
    /// One archive query every this many ms (`--ask-every-ms`).
    pub(crate) ask_every_ms: u64,
    /// A query with no response after this long is unanswered.
    pub(crate) answer_timeout_s: u64,
}

impl Default for LibrarianSettings {
    fn default() -> Self {
        Self {
            shards: 4,
            // The brief's free tier: 15 a minute, 1,500 a day.
            rpm: 15,
            rpd: 1500,
            shard1_real_rpm: 2,
            shard2_real_rpd: 10,
            rate_503: 0.05,
            // 30 a minute: under what the shards serve once shard 2 is out
            // (2 + 15 + 15), so the one daemon keeps up; the per-minute
            // limits are still reached (shard 1's at once, the others'
            // in busy minutes).
            ask_every_ms: 2000,
            answer_timeout_s: 150,
        }
    }
}

impl LibrarianSettings {
    /// Shard `n`'s fake API key.
    fn key(n: u32) -> String {
        format!("fake-gemini-shard-{n}")
    }

    /// Shard `n`'s real (per minute, per day) limits at the mock.
    fn real_limits(&self, n: u32) -> (u32, u32) {
        match n {
            1 => (self.shard1_real_rpm.max(1), self.rpd),
            2 => (self.rpm, self.shard2_real_rpd),
            _ => (self.rpm, self.rpd),
        }
    }
}

// ------------------------------------------------------------ mock Gemini --

/// What one request to the mock got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    PerMinute429,
    PerDay429,
    Unavailable503,
    /// Not a `generateContent` call, an unknown key or an unreadable body.
    Refused,
}

#[derive(Debug, Clone, Copy)]
struct Received {
    /// Unix milliseconds when the request was read.
    at_ms: i64,
    outcome: Outcome,
}

/// What the mock Gemini saw: every request per key, and per question which
/// shards it went to.
#[derive(Debug, Default)]
pub(crate) struct GeminiMock {
    settings: LibrarianSettings,
    by_key: Mutex<HashMap<String, Vec<Received>>>,
    /// Question number (`[soak-q N]` in the prompt) → (shard, outcome) in
    /// order of arrival.
    by_question: Mutex<HashMap<u64, Vec<(u32, Outcome)>>>,
}

/// Now, in Unix milliseconds.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl GeminiMock {
    /// A mock that has seen nothing yet.
    pub(crate) fn new(settings: LibrarianSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// Decides a request's fate as Google would, and records it.
    fn admit(&self, key: &str, question: Option<u64>) -> (Outcome, u32, u32) {
        let shard = key
            .strip_prefix("fake-gemini-shard-")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=self.settings.shards).contains(n));
        let Some(shard) = shard else {
            return (Outcome::Refused, 0, 0);
        };
        let (rpm, rpd) = self.settings.real_limits(shard);
        let now = unix_ms();
        let mut by_key = lock(&self.by_key);
        let seen = by_key.entry(key.to_owned()).or_default();
        // Google counts what it admitted: per fixed minute, per Pacific day.
        let minute = now.div_euclid(60_000);
        let today = pacific_day(chrono::DateTime::from_timestamp_millis(now).unwrap_or_default());
        let admitted = seen.iter().filter(|r| r.outcome == Outcome::Ok);
        let (mut in_minute, mut in_day) = (0u32, 0u32);
        for r in admitted {
            if r.at_ms.div_euclid(60_000) == minute {
                in_minute += 1;
            }
            if pacific_day(chrono::DateTime::from_timestamp_millis(r.at_ms).unwrap_or_default())
                == today
            {
                in_day += 1;
            }
        }
        let outcome = if in_day >= rpd {
            Outcome::PerDay429
        } else if in_minute >= rpm {
            Outcome::PerMinute429
        } else if rand::rng().random_bool(self.settings.rate_503.clamp(0.0, 1.0)) {
            Outcome::Unavailable503
        } else {
            Outcome::Ok
        };
        seen.push(Received {
            at_ms: now,
            outcome,
        });
        drop(by_key);
        if let Some(q) = question {
            lock(&self.by_question)
                .entry(q)
                .or_default()
                .push((shard, outcome));
        }
        let to_next_minute = (60 - (now.div_euclid(1000) % 60)).max(1) as u32;
        let value = if outcome == Outcome::PerDay429 {
            rpd
        } else {
            rpm
        };
        (outcome, value, to_next_minute)
    }
}

/// Starts the mock Gemini on a loopback port.
pub(crate) async fn start_gemini(
    settings: LibrarianSettings,
) -> Result<(MockServer, Arc<GeminiMock>), AnyError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let server = MockServer::builder()
        .listener(listener)
        .disable_request_recording()
        .start()
        .await;
    let mock = Arc::new(GeminiMock::new(settings));
    Mock::given(any())
        .respond_with(GeminiResponder(Arc::clone(&mock)))
        .mount(&server)
        .await;
    Ok((server, mock))
}

/// The prompt's text: every text part of every content.
fn prompt_text(body: &serde_json::Value) -> String {
    let mut s = String::new();
    for c in body["contents"].as_array().into_iter().flatten() {
        for p in c["parts"].as_array().into_iter().flatten() {
            if let Some(t) = p["text"].as_str() {
                s.push_str(t);
            }
        }
    }
    s
}

/// `[soak-q N]` in the question.
fn question_number(prompt: &str) -> Option<u64> {
    let at = prompt.rfind("[soak-q ")? + "[soak-q ".len();
    let rest = &prompt[at..];
    rest[..rest.find(']')?].trim().parse().ok()
}

/// The id of the first finding the librarian put in the prompt
/// (`FINDINGS\n\n[<id>] session …`).
fn first_finding_id(prompt: &str) -> Option<&str> {
    let at = prompt.find("FINDINGS")?;
    let rest = &prompt[at..];
    let open = rest.find('[')? + 1;
    let close = rest[open..].find(']')? + open;
    Some(&rest[open..close])
}

/// Answers every request as [`GeminiMock::admit`] decides.
struct GeminiResponder(Arc<GeminiMock>);

impl Respond for GeminiResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let path = request.url.path();
        let key = request
            .headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let prompt = prompt_text(&body);
        let question = question_number(&prompt);
        let (outcome, quota_value, retry_s) =
            if request.method.as_str() == "POST" && path.contains(":generateContent") {
                self.0.admit(key, question)
            } else {
                (Outcome::Refused, 0, 0)
            };
        let latency = rand::rng().random_range(20..150u64);
        let model = path
            .split("/models/")
            .nth(1)
            .and_then(|m| m.split(':').next())
            .unwrap_or("gemini");
        let (status, payload) =
            gemini_payload(outcome, model, &prompt, question, quota_value, retry_s);
        ResponseTemplate::new(status)
            .set_body_raw(payload.to_string(), "application/json; charset=UTF-8")
            .set_delay(Duration::from_millis(latency))
    }
}

/// The status and JSON body of one answer.
fn gemini_payload(
    outcome: Outcome,
    model: &str,
    prompt: &str,
    question: Option<u64>,
    quota_value: u32,
    retry_s: u32,
) -> (u16, serde_json::Value) {
    match outcome {
        Outcome::Ok => {
            let cited = first_finding_id(prompt).unwrap_or("none");
            let answer = serde_json::json!({
                "answer": format!("The archive holds what was asked (question {}); see the cited finding.", question.unwrap_or(0)),
                "citations": [cited],
            })
            .to_string();
            let prompt_tokens = (prompt.len() / 4).max(1);
            let out_tokens = (answer.len() / 4).max(1);
            (
                200,
                serde_json::json!({
                    "candidates": [{
                        "content": {"parts": [{"text": answer}], "role": "model"},
                        "finishReason": "STOP",
                        "index": 0
                    }],
                    "usageMetadata": {
                        "promptTokenCount": prompt_tokens,
                        "candidatesTokenCount": out_tokens,
                        "totalTokenCount": prompt_tokens + out_tokens,
                        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]
                    },
                    "modelVersion": model,
                    "responseId": format!("soak-{}", question.unwrap_or(0))
                }),
            )
        }
        Outcome::PerMinute429 | Outcome::PerDay429 => {
            let per_day = outcome == Outcome::PerDay429;
            let quota_id = if per_day {
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
            } else {
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
            };
            (
                429,
                serde_json::json!({"error": {
                    "code": 429,
                    "message": format!("You exceeded your current quota, please check your plan and billing details.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: {quota_value}\nPlease retry in {retry_s}s."),
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [
                        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                            "quotaId": quota_id,
                            "quotaDimensions": {"location": "global", "model": "gemini"},
                            "quotaValue": quota_value.to_string()
                        }]},
                        // A per-day 429 carries a short RetryInfo too
                        // (the recorded one says 22 s).
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                         "retryDelay": format!("{}s", if per_day { 22 } else { retry_s })}
                    ]
                }}),
            )
        }
        Outcome::Unavailable503 => (
            503,
            serde_json::json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}),
        ),
        Outcome::Refused => (
            400,
            serde_json::json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}),
        ),
    }
}

// ------------------------------------------------------- librarian process --

/// `soak librarian --redis URL`: the same composition as `swarm librarian
/// serve` (the shard pool from `GEMINI_API_KEY_SHARD<N>` and
/// `GEMINI_SHARD<N>_PER_MINUTE/_PER_DAY`, `GEMINI_BASE_URL` for the mock),
/// until SIGINT.
pub(crate) async fn librarian_process(args: &[String]) -> Result<(), AnyError> {
    let mut url = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--redis" => url = it.next().cloned(),
            _ => return Err(format!("unknown librarian argument {a}").into()),
        }
    }
    let url = url.ok_or("--redis")?;
    // Logs to stderr as `swarm` does (the soak counts what the pool did).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let bus: Arc<dyn Bus> = Arc::new(RedisBus::connect(bus_config(&url)?).await?);
    let shards = shards_from_env(QuotaLimits::free_tier())?;
    let pool = ShardPool::new(
        shards,
        Arc::clone(&bus),
        PoolConfig::default().client(ClientConfig::from_env()),
    )?;
    let daemon = LibrarianDaemon::new(bus, AnswerSource::model(pool));
    let stats = daemon
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    eprintln!("librarian stopped: {stats:?}");
    Ok(())
}

/// The running librarian process.
pub(crate) struct LibrarianProc {
    child: Child,
    log: PathBuf,
    pub(crate) peak_rss_kb: u64,
}

impl LibrarianProc {
    /// Starts it: `swarm librarian serve` with `cli`, else this program's
    /// `librarian` mode.
    pub(crate) fn start(
        exe: &Path,
        cli: bool,
        redis_url: &str,
        gemini_url: &str,
        s: &LibrarianSettings,
        log: PathBuf,
    ) -> Result<Self, AnyError> {
        let mut cmd = Command::new(exe);
        if cli {
            cmd.args(["librarian", "serve"]).env("REDIS_URL", redis_url);
        } else {
            cmd.args(["librarian", "--redis", redis_url]);
        }
        for n in 1..=s.shards {
            cmd.env(
                format!("GEMINI_API_KEY_SHARD{n}"),
                LibrarianSettings::key(n),
            )
            .env(format!("GEMINI_SHARD{n}_PER_MINUTE"), s.rpm.to_string())
            .env(format!("GEMINI_SHARD{n}_PER_DAY"), s.rpd.to_string());
        }
        let child = cmd
            .env("GEMINI_BASE_URL", gemini_url)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self {
            child,
            log,
            peak_rss_kb: 0,
        })
    }

    /// Updates the daemon's peak RSS.
    pub(crate) fn sample(&mut self) {
        if let Some(kb) = crate::fleet::vm_hwm_kb(self.child.id()) {
            self.peak_rss_kb = self.peak_rss_kb.max(kb);
        }
    }

    /// SIGINT, then SIGKILL after 15 s; whether it had exited by itself
    /// before (with its status).
    pub(crate) fn stop(&mut self) -> Option<String> {
        self.sample();
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status.to_string());
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("librarian did not stop on SIGINT; killed");
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for LibrarianProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ asking --

/// How one archive query ended.
#[derive(Debug, Clone)]
enum Fate {
    Answered {
        by: String,
        ms: f64,
    },
    /// An error response saying every shard was out (or kept failing).
    Exhausted {
        kind: String,
    },
    /// An error response of another kind.
    Failed {
        kind: String,
        message: String,
    },
    Unanswered,
}

/// What the asking agents saw.
#[derive(Debug, Default)]
pub(crate) struct Asked {
    /// Question number → fate.
    fates: BTreeMap<u64, Fate>,
    /// Ticks when no finished task could be found to ask about.
    pub(crate) skipped: u64,
}

/// Error kinds that mean the pool had no shard left to serve (or every one
/// it tried kept failing): the query was answered, with "exhausted".
const EXHAUSTED_KINDS: &[&str] = &[
    "all_shards_exhausted",
    "quota_exhausted",
    "rate_limited",
    "overloaded",
    "server_error",
    "timeout",
    "transport",
];

/// Agents asking: one archive query every `ask_every_ms` until `ask_until`,
/// each about the findings around one finished task (so the filter always
/// selects at least that finding), each waiting for its response up to
/// `answer_timeout_s` after it was asked.
pub(crate) async fn ask_loop(
    bus: Arc<RedisBus>,
    pushed: Arc<Mutex<Vec<TaskId>>>,
    s: LibrarianSettings,
    ask_until: Instant,
    done: Arc<AtomicBool>,
) -> Asked {
    let mut asked = Asked::default();
    let mut waiting = tokio::task::JoinSet::new();
    let mut next_ask = Instant::now();
    let mut n = 0u64;
    let every = Duration::from_millis(s.ask_every_ms.max(10));
    let timeout = Duration::from_secs(s.answer_timeout_s);
    loop {
        let now = Instant::now();
        if now < ask_until && now >= next_ask {
            next_ask += every;
            match question(&bus, &pushed, n).await {
                Some(query) => {
                    let bus = Arc::clone(&bus);
                    let q = n;
                    n += 1;
                    waiting.spawn(async move { (q, ask_and_wait(&bus, &query, timeout).await) });
                }
                None => asked.skipped += 1,
            }
        }
        while let Some(joined) = waiting.try_join_next() {
            match joined {
                Ok((q, Some(fate))) => {
                    asked.fates.insert(q, fate);
                }
                Ok((_, None)) => asked.skipped += 1,
                Err(e) => eprintln!("an asking agent failed: {e}"),
            }
        }
        if Instant::now() >= ask_until && waiting.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.store(true, Ordering::SeqCst);
    asked
}

/// Question `n` about a random finished task's neighbourhood; `None` when
/// no finished task was found (yet).
async fn question(bus: &RedisBus, pushed: &Mutex<Vec<TaskId>>, n: u64) -> Option<ArchiveQuery> {
    for _ in 0..5 {
        let task = {
            let p = lock(pushed);
            if p.is_empty() {
                return None;
            }
            p[rand::rng().random_range(0..p.len())]
        };
        let Ok(Some(f)) = bus.get_finding(&task_finding_id(task)).await else {
            continue;
        };
        let filter = FindingFilter::all().between(
            Some(f.created_at - chrono::Duration::seconds(2)),
            Some(f.created_at + chrono::Duration::seconds(1)),
        );
        return Some(
            ArchiveQuery::new(
                format!(
                    "[soak-q {n}] What did the swarm find around task {task}? Cite what you use."
                ),
                filter,
            )
            .asked_by("soak-agent"),
        );
    }
    None
}

/// Asks `query` (up to 10 tries while the bus refuses it) and waits up to
/// `timeout` after it was asked; `None` when it could not be asked.
async fn ask_and_wait(bus: &RedisBus, query: &ArchiveQuery, timeout: Duration) -> Option<Fate> {
    let mut tries = 1;
    let mut asked_at = Instant::now();
    let mut result = ask(bus, query, timeout).await;
    loop {
        match result {
            Ok(r) => return Some(fate(r, asked_at)),
            Err(e) if e.is_timeout() => return Some(Fate::Unanswered),
            Err(e) if !e.asked() => {
                if tries == 10 {
                    return None;
                }
                tries += 1;
                eprintln!("ask failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
                asked_at = Instant::now();
                result = ask(bus, query, timeout).await;
            }
            // Asked, but the answer could not be read: wait on.
            Err(_) => {
                let left = timeout.saturating_sub(asked_at.elapsed());
                if left.is_zero() {
                    return Some(Fate::Unanswered);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                result = wait_for(bus, query.id, left).await;
            }
        }
    }
}

/// What a response says about its question.
fn fate(r: ArchiveResponse, asked_at: Instant) -> Fate {
    if r.status == ResponseStatus::Ok {
        return Fate::Answered {
            by: r.answered_by.unwrap_or_default(),
            ms: asked_at.elapsed().as_secs_f64() * 1000.0,
        };
    }
    let (kind, message) = r
        .error
        .map(|e| (e.kind, e.message))
        .unwrap_or_else(|| ("unknown".into(), String::new()));
    if EXHAUSTED_KINDS.contains(&kind.as_str()) {
        Fate::Exhausted { kind }
    } else {
        Fate::Failed { kind, message }
    }
}

// ------------------------------------------------------------------ report --

/// One shard as the mock and the ledger saw it.
#[derive(Debug, Serialize)]
pub(crate) struct ShardAccount {
    pub(crate) shard: u32,
    /// The limits the pool was configured with.
    pub(crate) configured_rpm: u32,
    pub(crate) configured_rpd: u32,
    /// The limits the mock enforced (Google's side).
    pub(crate) mock_real_rpm: u32,
    pub(crate) mock_real_rpd: u32,
    /// Requests the mock received (every one was granted by the ledger
    /// first: a 429 or 503 was still sent).
    pub(crate) requests_received: u64,
    pub(crate) answered_200: u64,
    pub(crate) per_minute_429: u64,
    pub(crate) per_day_429: u64,
    pub(crate) unavailable_503: u64,
    /// Requests received in the busiest minute window (fixed windows of
    /// arrival, as the ledger counts them).
    pub(crate) busiest_minute_received: u64,
    /// Admitted in the busiest minute (answered 200 or 503: not refused
    /// for quota).
    pub(crate) busiest_minute_admitted: u64,
    /// Requests over the configured per-minute limit in any window (must
    /// be 0).
    pub(crate) requests_over_minute_limit: u64,
    /// Requests over it by arrival that came within `transit_allowance_ms`
    /// after the window began while the window before had room: sent (and
    /// granted) in that one.
    pub(crate) requests_over_minute_limit_in_transit: u64,
    /// Requests received on the busiest Pacific day.
    pub(crate) busiest_day_received: u64,
    /// The ledger's count of requests granted today (`shard_states`).
    pub(crate) ledger_granted_today: u32,
    /// The mock's count for the same Pacific day.
    pub(crate) mock_received_today: u64,
    /// The ledger's status and `librarian:shard<N>:quota` at the end.
    pub(crate) ledger_status: String,
    pub(crate) ledger_quota_left: Option<i64>,
}

/// The librarian part of the report.
#[derive(Debug, Serialize)]
pub(crate) struct LibrarianReport {
    pub(crate) settings: LibrarianSettings,
    pub(crate) queries_asked: u64,
    pub(crate) queries_answered: u64,
    /// Answered after the pool moved on from a shard the mock refused
    /// (the mock saw the question on two or more keys).
    pub(crate) queries_failed_over: u64,
    /// Answered with an error saying no shard could serve.
    pub(crate) queries_exhausted: u64,
    /// Answered with an error of another kind (must be 0).
    pub(crate) queries_failed_other: u64,
    pub(crate) queries_unanswered: u64,
    pub(crate) asks_skipped_no_finding_yet: u64,
    pub(crate) answered_by: BTreeMap<String, u64>,
    pub(crate) answer_latency_p50_ms: f64,
    pub(crate) answer_latency_p99_ms: f64,
    pub(crate) exhausted_kinds: BTreeMap<String, u64>,
    pub(crate) failed_other_sample: Vec<String>,
    pub(crate) mock_requests: u64,
    pub(crate) mock_per_minute_429: u64,
    pub(crate) mock_per_day_429: u64,
    pub(crate) mock_503: u64,
    pub(crate) transit_allowance_ms: i64,
    pub(crate) shards: Vec<ShardAccount>,
    /// No shard ever received more requests in a minute window than its
    /// configured per-minute limit, nor more in a Pacific day than its
    /// configured daily limit.
    pub(crate) quota_never_over: bool,
    /// Every shard's ledger count today equals what the mock received
    /// today (fact, not required: a grant whose reply Redis dropped is
    /// counted without being sent).
    pub(crate) ledger_equals_mock: bool,
    pub(crate) librarian_exited_by_itself: Option<String>,
    /// What the daemon's log (`RUST_LOG=info`) says the pool did: lines
    /// naming a shard cooled, a shard exhausted, a wait for a cooling shard,
    /// a warning.
    pub(crate) librarian_log_counts: BTreeMap<String, u64>,
    /// The log's last lines, when the daemon exited by itself.
    pub(crate) librarian_log_tail: Vec<String>,
    pub(crate) librarian_peak_rss_kb: u64,
}

/// A request sent up to this long before a minute began may arrive after.
const TRANSIT_ALLOWANCE_MS: i64 = 1000;

/// The minute windows of one key's requests (fixed windows of arrival, as
/// the ledger counts them): the busiest one's requests received and
/// admitted, and the requests over `limit` in any window. Requests over
/// the limit that arrived within [`TRANSIT_ALLOWANCE_MS`] after their
/// window began, while the window before had room for them, were sent in
/// that window (the ledger granted them there) and are counted apart.
fn minute_windows(times: &[Received], limit: u32) -> (u64, u64, u64, u64) {
    // minute → (received, admitted, received early in the minute)
    let mut counts: BTreeMap<i64, (u64, u64, u64)> = BTreeMap::new();
    for r in times {
        let e = counts.entry(r.at_ms.div_euclid(60_000)).or_default();
        e.0 += 1;
        if matches!(r.outcome, Outcome::Ok | Outcome::Unavailable503) {
            e.1 += 1;
        }
        if r.at_ms.rem_euclid(60_000) < TRANSIT_ALLOWANCE_MS {
            e.2 += 1;
        }
    }
    let limit = u64::from(limit);
    let (mut over, mut in_transit) = (0, 0);
    for (m, (rx, _, early)) in &counts {
        let excess = rx.saturating_sub(limit);
        if excess == 0 {
            continue;
        }
        let room_before = limit.saturating_sub(counts.get(&(m - 1)).map_or(0, |c| c.0));
        let explained = excess.min(*early).min(room_before);
        in_transit += explained;
        over += excess - explained;
    }
    let busiest_rx = counts.values().map(|c| c.0).max().unwrap_or(0);
    let busiest_adm = counts.values().map(|c| c.1).max().unwrap_or(0);
    (busiest_rx, busiest_adm, over, in_transit)
}

/// Lines of the daemon's log per thing the pool did.
fn log_counts(log: &str) -> BTreeMap<String, u64> {
    let kinds = [
        ("shard cooled (rate limited)", "shard rate limited; cooling"),
        ("shard exhausted (daily quota)", "daily quota exhausted"),
        ("limit learnt from a 429", "limit from a 429"),
        ("waited for a cooling shard", "waiting for the earliest"),
        ("warnings", "WARN"),
    ];
    kinds
        .iter()
        .map(|(name, needle)| {
            (
                (*name).to_owned(),
                log.lines().filter(|l| l.contains(needle)).count() as u64,
            )
        })
        .collect()
}

/// One shard's account: the mock's requests of its key (`seen`) against
/// the ledger's state and the limits the pool was configured with.
async fn account_shard(
    bus: &RedisBus,
    s: &LibrarianSettings,
    n: u32,
    seen: &[Received],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ShardAccount, AnyError> {
    let id = ShardId::new(n)?;
    let configured = QuotaLimits::new(Some(s.rpd), Some(s.rpm));
    let state = bus
        .shard_states(&[id], configured, now)
        .await?
        .into_iter()
        .next();
    let quota_left = bus.shard_quotas(&[id]).await?.into_iter().next().flatten();
    let count = |o: Outcome| seen.iter().filter(|r| r.outcome == o).count() as u64;
    let (busiest_rx, busiest_adm, over, in_transit) = minute_windows(seen, s.rpm);
    let mut per_day: BTreeMap<chrono::NaiveDate, u64> = BTreeMap::new();
    for r in seen {
        let d = pacific_day(chrono::DateTime::from_timestamp_millis(r.at_ms).unwrap_or_default());
        *per_day.entry(d).or_default() += 1;
    }
    let (real_rpm, real_rpd) = s.real_limits(n);
    Ok(ShardAccount {
        shard: n,
        configured_rpm: s.rpm,
        configured_rpd: s.rpd,
        mock_real_rpm: real_rpm,
        mock_real_rpd: real_rpd,
        requests_received: seen.len() as u64,
        answered_200: count(Outcome::Ok),
        per_minute_429: count(Outcome::PerMinute429),
        per_day_429: count(Outcome::PerDay429),
        unavailable_503: count(Outcome::Unavailable503),
        busiest_minute_received: busiest_rx,
        busiest_minute_admitted: busiest_adm,
        requests_over_minute_limit: over,
        requests_over_minute_limit_in_transit: in_transit,
        busiest_day_received: per_day.values().copied().max().unwrap_or(0),
        ledger_granted_today: state.as_ref().map_or(0, |st| st.used_today),
        mock_received_today: per_day.get(&pacific_day(now)).copied().unwrap_or(0),
        ledger_status: state.map_or_else(|| "unknown".into(), |st| st.status.to_string()),
        ledger_quota_left: quota_left,
    })
}

/// The asking agents' queries counted by fate.
#[derive(Debug, Default)]
struct Tally {
    answered: u64,
    /// Answered, and the mock saw the question on two or more keys.
    failed_over: u64,
    exhausted: u64,
    failed: u64,
    unanswered: u64,
    answered_by: BTreeMap<String, u64>,
    exhausted_kinds: BTreeMap<String, u64>,
    failed_sample: Vec<String>,
    /// Answer latencies, sorted (ms).
    latencies: Vec<f64>,
}

/// Counts the fates in `asked`; `by_question` says which keys the mock saw
/// each question on.
fn tally(asked: &Asked, by_question: &HashMap<u64, Vec<(u32, Outcome)>>) -> Tally {
    let mut t = Tally::default();
    for (q, fate) in &asked.fates {
        match fate {
            Fate::Answered { by, ms } => {
                t.answered += 1;
                t.latencies.push(*ms);
                *t.answered_by.entry(by.clone()).or_default() += 1;
                let mut keys: Vec<u32> = by_question
                    .get(q)
                    .map(|v| v.iter().map(|(k, _)| *k).collect())
                    .unwrap_or_default();
                keys.sort_unstable();
                keys.dedup();
                if keys.len() > 1 {
                    t.failed_over += 1;
                }
            }
            Fate::Exhausted { kind } => {
                t.exhausted += 1;
                *t.exhausted_kinds.entry(kind.clone()).or_default() += 1;
            }
            Fate::Failed { kind, message } => {
                t.failed += 1;
                if t.failed_sample.len() < 10 {
                    t.failed_sample.push(format!("{kind}: {message}"));
                }
            }
            Fate::Unanswered => t.unanswered += 1,
        }
    }
    t.latencies.sort_by(f64::total_cmp);
    t
}

/// The librarian's account: stops the daemon, then sets the asking agents'
/// fates, the mock's counts per key and the ledger's side by side.
pub(crate) async fn account(
    bus: &RedisBus,
    mock: &GeminiMock,
    asked: Asked,
    mut proc_: LibrarianProc,
) -> Result<LibrarianReport, AnyError> {
    let exited = proc_.stop();
    let log = std::fs::read_to_string(&proc_.log).unwrap_or_default();
    let s = mock.settings.clone();
    let by_key = lock(&mock.by_key).clone();
    let by_question = lock(&mock.by_question).clone();
    let now = chrono::Utc::now();
    let mut shards = Vec::new();
    for n in 1..=s.shards {
        let seen = by_key
            .get(&LibrarianSettings::key(n))
            .map_or(&[][..], Vec::as_slice);
        shards.push(account_shard(bus, &s, n, seen, now).await?);
    }
    let never_over = shards
        .iter()
        .all(|a| a.requests_over_minute_limit == 0 && a.busiest_day_received <= u64::from(s.rpd));
    let ledger_equal = shards
        .iter()
        .all(|a| u64::from(a.ledger_granted_today) == a.mock_received_today);
    let t = tally(&asked, &by_question);
    let all: Vec<&Received> = by_key.values().flatten().collect();
    let total = |o: Outcome| all.iter().filter(|r| r.outcome == o).count() as u64;
    let log_tail = if exited.is_some() {
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(20);
        lines.iter().skip(from).map(|l| (*l).to_owned()).collect()
    } else {
        Vec::new()
    };
    Ok(LibrarianReport {
        settings: s,
        queries_asked: asked.fates.len() as u64,
        queries_answered: t.answered,
        queries_failed_over: t.failed_over,
        queries_exhausted: t.exhausted,
        queries_failed_other: t.failed,
        queries_unanswered: t.unanswered,
        asks_skipped_no_finding_yet: asked.skipped,
        answered_by: t.answered_by,
        answer_latency_p50_ms: percentile(&t.latencies, 0.5),
        answer_latency_p99_ms: percentile(&t.latencies, 0.99),
        exhausted_kinds: t.exhausted_kinds,
        failed_other_sample: t.failed_sample,
        mock_requests: all.len() as u64,
        mock_per_minute_429: total(Outcome::PerMinute429),
        mock_per_day_429: total(Outcome::PerDay429),
        mock_503: total(Outcome::Unavailable503),
        transit_allowance_ms: TRANSIT_ALLOWANCE_MS,
        shards,
        quota_never_over: never_over,
        ledger_equals_mock: ledger_equal,
        librarian_log_counts: log_counts(&log),
        librarian_log_tail: log_tail,
        librarian_exited_by_itself: exited,
        librarian_peak_rss_kb: proc_.peak_rss_kb,
    })
}
