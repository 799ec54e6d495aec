//! Domain types stored on the bus, with stable snake_case JSON.
//!
//! Every struct here is `#[non_exhaustive]` so that fields can be added
//! without breaking users: build values with the constructors and `with_*`
//! methods. Unknown JSON fields are ignored on read, so values written by a
//! newer version still load.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::{FindingId, QueryId, SessionId, ShardId, TaskId, TierName, WorkerId};

/// Characters per token in the rough token estimate (the usual rule of thumb
/// for English text).
pub const CHARS_PER_TOKEN: usize = 4;

/// Estimates the tokens of a text: one per [`CHARS_PER_TOKEN`] characters,
/// rounded up.
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count();
    u32::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(u32::MAX)
}

/// What a worker found: the unit of shared memory, stored as JSON under
/// `finding:<uuid>`. Findings are immutable once stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    /// Unique id; the key is `finding:<id>`.
    pub id: FindingId,
    /// The worker that wrote it.
    pub worker: WorkerId,
    /// The session it belongs to (`instance-10`).
    pub session: SessionId,
    /// The task it answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// One-line summary.
    pub title: String,
    /// The finding itself.
    pub body: String,
    /// Free tags for filtering (`cost`, `redis`).
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Findings this one builds on or summarises.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cites: Vec<FindingId>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Estimated tokens of title and body.
    pub tokens: u32,
    /// The shape its stored value had: the library's JSON, or a value
    /// written around the library (not part of the JSON).
    #[serde(skip)]
    origin: FindingOrigin,
}

impl Finding {
    /// A new finding with a fresh id, made now.
    pub fn new(
        worker: WorkerId,
        session: SessionId,
        title: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        let title = title.into();
        let body = body.into();
        let tokens = estimate_tokens(&title).saturating_add(estimate_tokens(&body));
        Self {
            id: FindingId::random(),
            worker,
            session,
            task: None,
            title,
            body,
            tags: BTreeSet::new(),
            cites: Vec::new(),
            created_at: Utc::now(),
            tokens,
            origin: FindingOrigin::Library,
        }
    }

    /// The shape its stored value had: [`FindingOrigin::Library`] for the
    /// library's JSON (and every finding made with [`Finding::new`]), a raw
    /// origin for a value written around the library.
    pub fn origin(&self) -> FindingOrigin {
        self.origin
    }

    /// Reads the value stored under `key` (`finding:<id>`) as a finding,
    /// whatever wrote it: the library's JSON as is; other JSON, plain text
    /// or a HASH best effort (see [`FindingOrigin`]). `indexed_at` is when
    /// the finding index took the key in, the `created_at` of a raw finding
    /// (the Unix epoch when unknown). What cannot be read — not UTF-8,
    /// another Redis type, over `limits` — is [`Unreadable`], naming the key.
    pub fn from_stored(
        key: &str,
        id: &FindingId,
        value: RawValue,
        indexed_at: Option<DateTime<Utc>>,
        limits: &BusLimits,
    ) -> std::result::Result<Finding, Unreadable> {
        let unreadable = |reason| Unreadable::new(key, reason);
        // JSON is measured as the text it carries, as it was when stored
        // (escapes count as the characters they stand for).
        let size = match &value {
            RawValue::String(b) if b.first() == Some(&b'{') => {
                std::str::from_utf8(b).map_or(b.len(), json_text_len)
            }
            other => other.size(),
        };
        if size > limits.max_value_bytes {
            return Err(unreadable(UnreadableReason::TooLarge {
                size,
                limit: limits.max_value_bytes,
            }));
        }
        let created_at = indexed_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        match value {
            RawValue::String(bytes) => {
                let text =
                    String::from_utf8(bytes).map_err(|_| unreadable(UnreadableReason::NotText))?;
                if let Ok(ours) = serde_json::from_str::<Finding>(&text)
                    && ours.id == *id
                {
                    return Ok(ours);
                }
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(json @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                        Ok(raw_json_finding(id, &json, created_at))
                    }
                    _ => Ok(raw_finding(
                        id,
                        FindingOrigin::RawText,
                        first_line(&text),
                        text,
                        &RawFields::default(),
                        created_at,
                    )),
                }
            }
            RawValue::Hash(pairs) => {
                let mut fields = std::collections::BTreeMap::new();
                for (name, value) in pairs {
                    let name = String::from_utf8(name)
                        .map_err(|_| unreadable(UnreadableReason::NotText))?;
                    let value = String::from_utf8(value)
                        .map_err(|_| unreadable(UnreadableReason::NotText))?;
                    fields.insert(name, value);
                }
                let lookup = |names: &[&str]| {
                    names
                        .iter()
                        .find_map(|n| fields.get(*n).filter(|v| !v.trim().is_empty()))
                        .cloned()
                };
                let known = RawFields {
                    title: lookup(TITLE_FIELDS),
                    text: lookup(TEXT_FIELDS),
                    worker: lookup(WORKER_FIELDS),
                    session: lookup(SESSION_FIELDS),
                    tags: lookup(&["tags"])
                        .map(|t| split_tags(&t))
                        .unwrap_or_default(),
                };
                let body = fields
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let title = known
                    .title
                    .as_deref()
                    .or(known.text.as_deref())
                    .map(first_line)
                    .unwrap_or_default();
                Ok(raw_finding(
                    id,
                    FindingOrigin::RawHash,
                    title,
                    body,
                    &known,
                    created_at,
                ))
            }
            RawValue::Other { found } => Err(unreadable(UnreadableReason::WrongType { found })),
        }
    }

    /// Sets the id (for deterministic ids, or to retry a write idempotently).
    pub fn with_id(mut self, id: FindingId) -> Self {
        self.id = id;
        self
    }

    /// Sets the task it answers.
    pub fn with_task(mut self, task: TaskId) -> Self {
        self.task = Some(task);
        self
    }

    /// Adds tags.
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Adds findings this one cites.
    pub fn citing(mut self, ids: impl IntoIterator<Item = FindingId>) -> Self {
        self.cites.extend(ids);
        self
    }

    /// Sets the creation time.
    pub fn at(mut self, created_at: DateTime<Utc>) -> Self {
        self.created_at = created_at;
        self
    }

    /// Checks the fields a bus relies on: a non-empty title.
    pub fn validate(&self) -> Result<()> {
        if self.title.trim().is_empty() {
            return Err(Error::InvalidInput {
                field: "finding.title",
                reason: "must not be empty".into(),
            });
        }
        Ok(())
    }
}

/// The shape of the value a [`Finding`] was read from.
///
/// The library writes its JSON; agents outside it (the brief's Claude Code
/// sessions, `redis-cli SET finding:deepseek_pricing "…"`, Python) write
/// other JSON, plain text or a HASH. Those are read best effort: the title
/// from a `title`, `name`, `summary`, `subject` or `headline` field, else the
/// first line of a `body`/`content`/`text`/`description` field or of the
/// text, else the id; the body is the whole text, the pretty-printed JSON
/// or every field of the HASH as `field: value` lines; worker and session
/// from `worker`/`worker_id`/`agent` and `session`/`session_id` fields when
/// they are valid ids, else [`UNKNOWN`]; tags from a `tags` field (a JSON
/// array, or text separated by commas or spaces).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingOrigin {
    /// The library's JSON of a [`Finding`].
    #[default]
    Library,
    /// Plain text (a STRING that is not a JSON object or array).
    RawText,
    /// JSON of another shape (an object or an array).
    RawJson,
    /// A Redis HASH.
    RawHash,
}

impl FindingOrigin {
    /// Whether the value was written around the library.
    pub const fn is_raw(self) -> bool {
        !matches!(self, FindingOrigin::Library)
    }

    /// A stable name (`library`, `raw_text`, `raw_json`, `raw_hash`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FindingOrigin::Library => "library",
            FindingOrigin::RawText => "raw_text",
            FindingOrigin::RawJson => "raw_json",
            FindingOrigin::RawHash => "raw_hash",
        }
    }
}

impl std::fmt::Display for FindingOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The worker and session of a raw finding that names none: `unknown`.
pub const UNKNOWN: &str = "unknown";

/// The longest title derived from a raw value, in characters.
pub const RAW_TITLE_CHARS: usize = 200;

const TITLE_FIELDS: &[&str] = &["title", "name", "summary", "subject", "headline"];
const TEXT_FIELDS: &[&str] = &["body", "content", "text", "description", "finding"];
const WORKER_FIELDS: &[&str] = &["worker", "worker_id", "agent"];
const SESSION_FIELDS: &[&str] = &["session", "session_id"];

/// A value as stored under `finding:<id>`, before it is read as a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawValue {
    /// A STRING's bytes.
    String(Vec<u8>),
    /// A HASH's fields and values.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// A value of another Redis type (`list`, `set`, …), never read.
    Other {
        /// The Redis type found.
        found: String,
    },
}

impl RawValue {
    /// A STRING holding `text`.
    pub fn text(text: impl Into<String>) -> Self {
        RawValue::String(text.into().into_bytes())
    }

    /// A HASH of these fields.
    pub fn hash<I, K, V>(fields: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        RawValue::Hash(
            fields
                .into_iter()
                .map(|(k, v)| (k.into().into_bytes(), v.into().into_bytes()))
                .collect(),
        )
    }

    /// Its size in bytes (a HASH: its fields and values).
    pub fn size(&self) -> usize {
        match self {
            RawValue::String(b) => b.len(),
            RawValue::Hash(pairs) => pairs.iter().fold(0usize, |n, (k, v)| {
                n.saturating_add(k.len()).saturating_add(v.len())
            }),
            RawValue::Other { .. } => 0,
        }
    }
}

/// Why a stored value could not be read as a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnreadableReason {
    /// Not UTF-8 text (binary).
    NotText,
    /// Another Redis type than STRING or HASH.
    WrongType {
        /// The type found (`list`, `set`, …).
        found: String,
    },
    /// The key names no valid finding id (`finding:a:b`, `finding:x y`).
    InvalidId {
        /// Why the id is invalid.
        reason: String,
    },
    /// Over the bus's value size limit.
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
}

impl std::fmt::Display for UnreadableReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnreadableReason::NotText => f.write_str("not UTF-8 text"),
            UnreadableReason::WrongType { found } => {
                write!(f, "a {found}, not a string or a hash")
            }
            UnreadableReason::InvalidId { reason } => write!(f, "not a finding id: {reason}"),
            UnreadableReason::TooLarge { size, limit } => {
                write!(f, "{size} bytes, over the limit of {limit}")
            }
        }
    }
}

/// A `finding:<id>` key whose value cannot be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unreadable {
    /// The full key.
    pub key: String,
    /// Why.
    pub reason: UnreadableReason,
}

impl Unreadable {
    /// A report for `key`.
    pub fn new(key: impl Into<String>, reason: UnreadableReason) -> Self {
        Self {
            key: key.into(),
            reason,
        }
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl From<Unreadable> for Error {
    fn from(u: Unreadable) -> Self {
        match u.reason {
            UnreadableReason::NotText => Error::decode(u.key, "not UTF-8 text"),
            UnreadableReason::WrongType { found } => Error::WrongType {
                key: u.key,
                expected: "string or hash",
                found,
            },
            UnreadableReason::InvalidId { reason } => {
                Error::decode(u.key, format!("not a finding id: {reason}"))
            }
            UnreadableReason::TooLarge { size, limit } => Error::ValueTooLarge {
                key: u.key,
                size,
                limit,
            },
        }
    }
}

/// The fields of a raw value the finding is built from.
#[derive(Default)]
struct RawFields {
    title: Option<String>,
    text: Option<String>,
    worker: Option<String>,
    session: Option<String>,
    tags: BTreeSet<String>,
}

/// The first non-empty line, trimmed, at most [`RAW_TITLE_CHARS`] characters.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let mut title: String = line.chars().take(RAW_TITLE_CHARS).collect();
    if line.chars().nth(RAW_TITLE_CHARS).is_some() {
        title.push('…');
    }
    title
}

fn split_tags(text: &str) -> BTreeSet<String> {
    text.split([',', ' ', ';'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn raw_json_finding(
    id: &FindingId,
    json: &serde_json::Value,
    created_at: DateTime<Utc>,
) -> Finding {
    let field = |names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| match json.get(*n) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                Some(v.to_string())
            }
            _ => None,
        })
    };
    let tags = match json.get("tags") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|t| t.as_str())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(s)) => split_tags(s),
        _ => BTreeSet::new(),
    };
    let known = RawFields {
        title: field(TITLE_FIELDS),
        text: field(TEXT_FIELDS),
        worker: field(WORKER_FIELDS),
        session: field(SESSION_FIELDS),
        tags,
    };
    let body = serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string());
    let title = known
        .title
        .as_deref()
        .or(known.text.as_deref())
        .map(first_line)
        .unwrap_or_default();
    raw_finding(id, FindingOrigin::RawJson, title, body, &known, created_at)
}

fn raw_finding(
    id: &FindingId,
    origin: FindingOrigin,
    title: String,
    body: String,
    known: &RawFields,
    created_at: DateTime<Utc>,
) -> Finding {
    let title = if title.is_empty() {
        id.to_string()
    } else {
        title
    };
    let worker = known
        .worker
        .as_deref()
        .and_then(|w| WorkerId::new(w.trim()).ok())
        .unwrap_or_else(WorkerId::unknown);
    let session = known
        .session
        .as_deref()
        .and_then(|s| SessionId::new(s.trim()).ok())
        .unwrap_or_else(SessionId::unknown);
    let tokens = estimate_tokens(&title).saturating_add(estimate_tokens(&body));
    Finding {
        id: id.clone(),
        worker,
        session,
        task: None,
        title,
        body,
        tags: known.tags.clone(),
        cites: Vec::new(),
        created_at,
        tokens,
        origin,
    }
}

/// Which findings to list. All conditions must hold; an empty filter matches
/// every active (not archived) finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FindingFilter {
    /// Only this session's findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// Only this worker's findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    /// Only findings with this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Only findings answering this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// Made at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Made before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// At most this many (the newest ones when cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Include archived findings (those replaced by a summary).
    #[serde(default)]
    pub include_archived: bool,
}

impl FindingFilter {
    /// Every active finding.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only this session's findings.
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// Only this worker's findings.
    pub fn worker(mut self, worker: WorkerId) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Only findings with this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only findings answering this task.
    pub fn task(mut self, task: TaskId) -> Self {
        self.task = Some(task);
        self
    }

    /// Made in `[since, until)`.
    pub fn between(mut self, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// At most `n`, the newest.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Also archived findings.
    pub fn with_archived(mut self) -> Self {
        self.include_archived = true;
        self
    }

    /// Whether a finding matches every condition but `limit` and
    /// `include_archived` (which the store applies).
    pub fn matches(&self, f: &Finding) -> bool {
        self.session.as_ref().is_none_or(|s| &f.session == s)
            && self.worker.as_ref().is_none_or(|w| &f.worker == w)
            && self.tag.as_ref().is_none_or(|t| f.tags.contains(t))
            && self.task.is_none_or(|t| f.task == Some(t))
            && self.since.is_none_or(|s| f.created_at >= s)
            && self.until.is_none_or(|u| f.created_at < u)
    }
}

/// The result of a listing: the findings that were read, oldest first, and
/// each stored value that could not be (naming its key and why). One
/// foreign value never hides the rest.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Listing {
    /// Findings, ordered by `created_at` then id.
    pub findings: Vec<Finding>,
    /// Keys whose values could not be read, with the reason.
    pub unreadable: Vec<Unreadable>,
}

impl Listing {
    /// A listing of these findings and unreadable keys.
    pub fn new(findings: Vec<Finding>, unreadable: Vec<Unreadable>) -> Self {
        Self {
            findings,
            unreadable,
        }
    }
}

/// The role of a model in the swarm. The model ids behind the tiers are
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Tier {
    /// The expensive strategic model (the brief's Sonnet).
    Coordinator,
    /// The cheap model doing ~90 % of the work (the brief's Haiku).
    Worker,
    /// The archive model (the brief's Gemini Flash).
    Librarian,
}

impl Tier {
    /// The brief's default tier name for this role (`sonnet`, `haiku`, `gemini`).
    pub fn default_name(self) -> TierName {
        let name = match self {
            Tier::Coordinator => "sonnet",
            Tier::Worker => "haiku",
            Tier::Librarian => "gemini",
        };
        TierName::from_trusted(name)
    }
}

/// A unit of work for a worker, stored as JSON in `worker:tasks:<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Task {
    /// Unique id.
    pub id: TaskId,
    /// The session it belongs to.
    pub session: SessionId,
    /// Short name of the kind of work (`grep`, `summarise`).
    pub kind: String,
    /// What to do, in words.
    pub instructions: String,
    /// Arguments for the handler.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// The tier it was routed to.
    pub tier: Tier,
    /// A finding this task continues from (the active loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<FindingId>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl Task {
    /// A new worker-tier task with a fresh id.
    pub fn new(
        session: SessionId,
        kind: impl Into<String>,
        instructions: impl Into<String>,
    ) -> Self {
        Self {
            id: TaskId::random(),
            session,
            kind: kind.into(),
            instructions: instructions.into(),
            payload: serde_json::Value::Null,
            tier: Tier::Worker,
            continues: None,
            created_at: Utc::now(),
        }
    }

    /// Sets the handler's arguments.
    pub fn with_payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the tier.
    pub fn with_tier(mut self, tier: Tier) -> Self {
        self.tier = tier;
        self
    }

    /// Continues from a finding.
    pub fn continuing(mut self, finding: FindingId) -> Self {
        self.continues = Some(finding);
        self
    }
}

/// A task a worker has claimed and not yet acknowledged or failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClaimedTask {
    /// The task.
    pub task: Task,
    /// Who claimed it.
    pub worker: WorkerId,
    /// How many times it has been handed out, this time included.
    pub deliveries: u32,
    /// An opaque receipt the bus uses to find the claim again.
    pub receipt: TaskReceipt,
}

/// The receipt of a claimed task: opaque (on Redis, the task's bytes as
/// queued), only given back to acknowledge or fail the claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskReceipt(String);

impl TaskReceipt {
    /// Wraps a bus's own receipt (for bus implementations).
    pub fn new(receipt: impl Into<String>) -> Self {
        Self(receipt.into())
    }

    /// The receipt as the bus made it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for TaskReceipt {
    fn from(receipt: String) -> Self {
        Self(receipt)
    }
}

impl From<&str> for TaskReceipt {
    fn from(receipt: &str) -> Self {
        Self(receipt.to_owned())
    }
}

impl ClaimedTask {
    /// Builds a claim (for bus implementations).
    pub fn new(
        task: Task,
        worker: WorkerId,
        deliveries: u32,
        receipt: impl Into<TaskReceipt>,
    ) -> Self {
        Self {
            task,
            worker,
            deliveries,
            receipt: receipt.into(),
        }
    }
}

/// Why a task was stopped: kept with the task, never retried silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskFailure {
    /// The task.
    pub task: Task,
    /// The worker that held it last.
    pub worker: WorkerId,
    /// What went wrong.
    pub report: String,
    /// How many times it was handed out.
    pub deliveries: u32,
    /// Whether it was dead-lettered by reclaim (too many deliveries) rather
    /// than failed by its worker.
    #[serde(default)]
    pub dead_lettered: bool,
    /// When it was stopped.
    pub at: DateTime<Utc>,
}

impl TaskFailure {
    /// A failure report for a claim.
    pub fn new(claim: &ClaimedTask, report: impl Into<String>) -> Self {
        Self {
            task: claim.task.clone(),
            worker: claim.worker.clone(),
            report: report.into(),
            deliveries: claim.deliveries,
            dead_lettered: false,
            at: Utc::now(),
        }
    }

    /// Marks it dead-lettered.
    pub fn dead_lettered(mut self) -> Self {
        self.dead_lettered = true;
        self
    }
}

/// What a reclaim pass did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ReclaimReport {
    /// Tasks moved to the receiving worker's queue.
    pub requeued: Vec<TaskId>,
    /// Tasks over the delivery limit, moved to the failed list.
    pub dead_lettered: Vec<TaskId>,
    /// Dead workers whose tasks were taken.
    pub from_workers: Vec<WorkerId>,
}

/// What a worker reports while it works (the progress beat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Progress {
    /// The task in hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// What it is doing now.
    pub step: String,
    /// When it said so.
    pub at: DateTime<Utc>,
}

impl Progress {
    /// A progress beat made now.
    pub fn new(task: Option<TaskId>, step: impl Into<String>) -> Self {
        Self {
            task,
            step: step.into(),
            at: Utc::now(),
        }
    }
}

/// A live worker as the registry sees it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// The worker.
    pub worker: WorkerId,
    /// When it last beat.
    pub at: DateTime<Utc>,
    /// Its last progress beat, if any.
    pub progress: Option<Progress>,
}

impl Heartbeat {
    /// Builds a heartbeat view (for bus implementations).
    pub fn new(worker: WorkerId, at: DateTime<Utc>, progress: Option<Progress>) -> Self {
        Self {
            worker,
            at,
            progress,
        }
    }
}

/// Formats a heartbeat timestamp as the value of `worker:status:<id>`:
/// Unix seconds with milliseconds (`1764000000.123`), which Python reads
/// with `float()`.
pub fn format_heartbeat(at: DateTime<Utc>) -> String {
    let ms = at.timestamp_millis();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Parses a heartbeat value: Unix seconds (integer or decimal) or RFC 3339.
pub fn parse_heartbeat(key: &str, value: &str) -> Result<DateTime<Utc>> {
    if let Ok(secs) = value.trim().parse::<f64>()
        && secs.is_finite()
        && let Some(t) = DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
    {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::decode(key, format!("not a heartbeat timestamp: {e}")))
}

/// A librarian shard's availability, the value of `librarian:shard<N>:status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShardStatus {
    /// Usable.
    Ok,
    /// Rate limited for a short while.
    Cooling,
    /// The day's quota is used up until the Pacific midnight reset.
    Exhausted,
    /// The key is invalid, leaked or the project unusable: never used again
    /// until enabled by hand.
    Disabled,
    /// Never used or tested.
    Untested,
}

impl ShardStatus {
    /// The stored string.
    pub const fn as_str(self) -> &'static str {
        match self {
            ShardStatus::Ok => "ok",
            ShardStatus::Cooling => "cooling",
            ShardStatus::Exhausted => "exhausted",
            ShardStatus::Disabled => "disabled",
            ShardStatus::Untested => "untested",
        }
    }

    /// Parses the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => ShardStatus::Ok,
            "cooling" => ShardStatus::Cooling,
            "exhausted" => ShardStatus::Exhausted,
            "disabled" => ShardStatus::Disabled,
            "untested" => ShardStatus::Untested,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ShardStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One shard's state in the quota ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardState {
    /// The shard.
    pub shard: ShardId,
    /// Its status now.
    pub status: ShardStatus,
    /// Requests granted this Pacific day.
    pub used_today: u32,
    /// What is left today, when the daily limit is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_today: Option<u32>,
    /// Cooling (rate limited) until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooling_until: Option<DateTime<Utc>>,
    /// Exhausted until then (the next Pacific midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausted_until: Option<DateTime<Utc>>,
    /// Why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

impl ShardState {
    /// A shard never used.
    pub fn untested(shard: ShardId) -> Self {
        Self {
            shard,
            status: ShardStatus::Untested,
            used_today: 0,
            remaining_today: None,
            cooling_until: None,
            exhausted_until: None,
            disabled_reason: None,
        }
    }

    /// When it is next usable: now for `ok`/`untested`, the end of cooling or
    /// exhaustion, `None` when disabled.
    pub fn next_usable(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.status {
            ShardStatus::Ok | ShardStatus::Untested => Some(now),
            ShardStatus::Cooling => self.cooling_until.or(Some(now)),
            ShardStatus::Exhausted => self.exhausted_until,
            ShardStatus::Disabled => None,
        }
    }
}

/// The halt protocol's report, the JSON value of `halt:reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HaltReport {
    /// What failed (`librarian shard 2: quota exhausted`).
    pub failed: String,
    /// At which step of the job (`paper: section 3 of 5`).
    pub step: String,
    /// What was saved before stopping (keys or journal names).
    #[serde(default)]
    pub saved: Vec<String>,
    /// Who halted (worker id, `coordinator`, `librarian`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl HaltReport {
    /// A report made now.
    pub fn new(failed: impl Into<String>, step: impl Into<String>) -> Self {
        Self {
            failed: failed.into(),
            step: step.into(),
            saved: Vec::new(),
            by: None,
            at: Utc::now(),
        }
    }

    /// Records what was saved.
    pub fn saved<I, S>(mut self, saved: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.saved.extend(saved.into_iter().map(Into::into));
        self
    }

    /// Reads the value stored under `halt:reason`, whatever wrote it.
    ///
    /// The swarm writes the JSON of a report; the brief's agents (and an
    /// operator's `SET halt:reason "shard 3 failed"`) write plain text.
    /// Both are a halt: a JSON report is read as such; anything else (plain
    /// text, a JSON string, JSON of another shape, invalid UTF-8) is a
    /// report whose `failed` is that text (lossily decoded, trimmed, or
    /// `"(empty halt:reason)"`), `step` empty, `by` unknown, and `at` the
    /// Unix epoch (the time is unknown; [`HaltReport::at_known`] says so).
    /// Never an error: a key that is set always halts.
    pub fn from_stored(raw: &[u8]) -> Self {
        if let Ok(report) = serde_json::from_slice::<HaltReport>(raw) {
            return report;
        }
        let text = match serde_json::from_slice::<String>(raw) {
            Ok(s) => s,
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        };
        let text = text.trim();
        let failed = if text.is_empty() {
            "(empty halt:reason)".to_owned()
        } else {
            text.to_owned()
        };
        Self {
            failed,
            step: String::new(),
            saved: Vec::new(),
            by: None,
            at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// Whether `at` is a real time (false for a plain-text halt, whose
    /// time is unknown).
    pub fn at_known(&self) -> bool {
        self.at != DateTime::<Utc>::UNIX_EPOCH
    }

    /// Records who halted.
    pub fn by(mut self, by: impl Into<String>) -> Self {
        self.by = Some(by.into());
        self
    }
}

impl std::fmt::Display for HaltReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.step.is_empty() {
            f.write_str(&self.failed)?;
        } else {
            write!(f, "{} at step {:?}", self.failed, self.step)?;
        }
        if !self.saved.is_empty() {
            write!(f, " (saved: {})", self.saved.join(", "))?;
        }
        Ok(())
    }
}

/// A question to the librarian, the JSON value of `query:archive:<uuid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArchiveQuery {
    /// Unique id; the response is `response:archive:<id>`.
    pub id: QueryId,
    /// The question.
    pub question: String,
    /// Which findings may be used.
    #[serde(default)]
    pub filter: FindingFilter,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_by: Option<String>,
    /// When.
    pub asked_at: DateTime<Utc>,
}

impl ArchiveQuery {
    /// A question over the findings `filter` selects.
    pub fn new(question: impl Into<String>, filter: FindingFilter) -> Self {
        Self {
            id: QueryId::random(),
            question: question.into(),
            filter,
            asked_by: None,
            asked_at: Utc::now(),
        }
    }

    /// Records who asked.
    pub fn asked_by(mut self, who: impl Into<String>) -> Self {
        self.asked_by = Some(who.into());
        self
    }
}

/// How an archive query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseStatus {
    /// Answered, with citations.
    Ok,
    /// Failed; `error` says why.
    Error,
}

/// The librarian's answer, the JSON value of `response:archive:<uuid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArchiveResponse {
    /// The query's id.
    pub id: QueryId,
    /// Answered or failed.
    pub status: ResponseStatus,
    /// The answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The findings the answer cites; every one exists.
    #[serde(default)]
    pub citations: Vec<FindingId>,
    /// Why it failed (kind and message), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResponseError>,
    /// Which provider or shard answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// When.
    pub answered_at: DateTime<Utc>,
}

/// Why an archive query failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseError {
    /// A stable machine-readable kind (`quota_exhausted`, `malformed_response`).
    pub kind: String,
    /// A human-readable message, without secrets.
    pub message: String,
}

impl ArchiveResponse {
    /// A successful answer.
    pub fn answered(id: QueryId, answer: impl Into<String>, citations: Vec<FindingId>) -> Self {
        Self {
            id,
            status: ResponseStatus::Ok,
            answer: Some(answer.into()),
            citations,
            error: None,
            answered_by: None,
            answered_at: Utc::now(),
        }
    }

    /// A failure response (never silence).
    pub fn failed(id: QueryId, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            id,
            status: ResponseStatus::Error,
            answer: None,
            citations: Vec::new(),
            error: Some(ResponseError {
                kind: kind.into(),
                message: message.into(),
            }),
            answered_by: None,
            answered_at: Utc::now(),
        }
    }

    /// Records who answered.
    pub fn answered_by(mut self, who: impl Into<String>) -> Self {
        self.answered_by = Some(who.into());
        self
    }
}

/// Limits a bus enforces on what it stores.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusLimits {
    /// Largest value accepted, in bytes (default 1 MiB), counted as the
    /// caller's text: a character JSON escapes (`\u0001`, `\n`, `\"`)
    /// counts as its own bytes, not its escape's, so a body of control
    /// characters within the limit is never refused for its encoding.
    pub max_value_bytes: usize,
    /// Heartbeat TTL when a worker does not say (default 60 s).
    pub heartbeat_ttl: Duration,
    /// How long a worker that was sent tasks but has never sent a heartbeat
    /// counts as starting, not dead: reclaim leaves its tasks alone until
    /// this much time has passed since its first task (default 60 s, one
    /// heartbeat TTL).
    pub worker_grace: Duration,
}

impl Default for BusLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: 1024 * 1024,
            heartbeat_ttl: Duration::from_secs(60),
            worker_grace: Duration::from_secs(60),
        }
    }
}

impl BusLimits {
    /// Sets the grace period of a worker that has never beaten.
    pub fn worker_grace(mut self, grace: Duration) -> Self {
        self.worker_grace = grace;
        self
    }

    /// The longest heartbeat TTL a bus stores (about 100 years): longer ones,
    /// `Duration::MAX` ("forever") included, are cut to it.
    pub const MAX_HEARTBEAT_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

    /// Checks a heartbeat TTL: zero is refused (the heartbeat would expire
    /// before it is written), anything over [`BusLimits::MAX_HEARTBEAT_TTL`]
    /// is cut to it.
    pub fn heartbeat_ttl_checked(ttl: Duration) -> Result<Duration> {
        if ttl.is_zero() {
            return Err(Error::InvalidInput {
                field: "heartbeat ttl",
                reason: "must be longer than zero".into(),
            });
        }
        Ok(ttl.min(Self::MAX_HEARTBEAT_TTL))
    }

    /// Sets the largest value accepted.
    pub fn max_value_bytes(mut self, n: usize) -> Self {
        self.max_value_bytes = n;
        self
    }

    /// Fails with [`Error::ValueTooLarge`] when `value`'s JSON, escapes
    /// counted as the characters they stand for ([`unescaped_len`]), is over
    /// the limit. Measures without building the JSON text.
    pub fn check_value<T: Serialize>(&self, key: impl FnOnce() -> String, value: &T) -> Result<()> {
        let size = match unescaped_len(value) {
            Ok(n) => n,
            Err(e) => return Err(Error::decode(key(), e)),
        };
        if size > self.max_value_bytes {
            return Err(Error::ValueTooLarge {
                key: key(),
                size,
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Fails with [`Error::ValueTooLarge`] when the JSON text `encoded`,
    /// escapes counted as the characters they stand for, is over the limit.
    pub fn check_json(&self, key: impl FnOnce() -> String, encoded: &str) -> Result<()> {
        let size = json_text_len(encoded);
        if size > self.max_value_bytes {
            return Err(Error::ValueTooLarge {
                key: key(),
                size,
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }

    /// Fails with [`Error::ValueTooLarge`] when `encoded` (stored as it is,
    /// not JSON) is over the limit.
    pub fn check(&self, key: impl FnOnce() -> String, encoded: &str) -> Result<()> {
        if encoded.len() > self.max_value_bytes {
            return Err(Error::ValueTooLarge {
                key: key(),
                size: encoded.len(),
                limit: self.max_value_bytes,
            });
        }
        Ok(())
    }
}

/// A writer that only counts bytes.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of `value`'s JSON, computed without allocating it.
pub fn encoded_len<T: Serialize>(value: &T) -> serde_json::Result<usize> {
    let mut c = Count(0);
    serde_json::to_writer(&mut c, value)?;
    Ok(c.0)
}

/// The length of `value`'s JSON with every escaped character counted as
/// the bytes it stands for (`"\u0001"` is 3 bytes: two quotes and one
/// control character), computed without allocating the text.
pub fn unescaped_len<T: Serialize>(value: &T) -> serde_json::Result<usize> {
    /// The compact formatter, but an escape writes the one byte it stands
    /// for (serde_json escapes only single-byte characters).
    struct Unescaped;
    impl serde_json::ser::Formatter for Unescaped {
        fn write_char_escape<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            _escape: serde_json::ser::CharEscape,
        ) -> std::io::Result<()> {
            writer.write_all(b"x")
        }
    }
    let mut c = Count(0);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut c, Unescaped,
    ))?;
    Ok(c.0)
}

/// The length of JSON text with every escape counted as the UTF-8 bytes of
/// what it stands for (`\n` 1, `\u00e9` 2, a surrogate pair 4).
pub fn json_text_len(json: &str) -> usize {
    let b = json.as_bytes();
    let (mut i, mut n) = (0usize, 0usize);
    while i < b.len() {
        if b[i] != b'\\' {
            n += 1;
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'u') {
            let unit = json
                .get(i + 2..i + 6)
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            n += match unit {
                Some(u) if u < 0x80 => 1,
                Some(u) if u < 0x800 || (0xD800..0xE000).contains(&u) => 2,
                Some(_) => 3,
                None => 6,
            };
            i += 6;
        } else {
            n += 1;
            i += 2;
        }
    }
    n
}

/// The one JSON codec: encodes a value for `key`.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::decode(key, e))
}

/// The one JSON codec: decodes the value stored under `key`, naming the key
/// when it is not what this crate wrote.
pub fn decode<T: serde::de::DeserializeOwned>(key: &str, raw: &str) -> Result<T> {
    serde_json::from_str(raw).map_err(|e| Error::decode(key, e))
}

#[cfg(test)]
mod halt_text_tests {
    use super::*;

    #[test]
    fn plain_text_under_halt_reason_is_a_halt_with_that_text() {
        let r = HaltReport::from_stored(b"shard 3 failed");
        assert_eq!(r.failed, "shard 3 failed");
        assert!(!r.at_known());
        let r = HaltReport::from_stored(b"\"quoted\"");
        assert_eq!(r.failed, "quoted");
        let r = HaltReport::from_stored(b"{\"other\": 1}");
        assert_eq!(r.failed, "{\"other\": 1}");
        assert_eq!(HaltReport::from_stored(b"  ").failed, "(empty halt:reason)");
        assert_eq!(HaltReport::from_stored(b"bad \xff").failed, "bad \u{fffd}");
        let json = serde_json::to_vec(&HaltReport::new("x", "y").by("w1")).unwrap();
        let r = HaltReport::from_stored(&json);
        assert_eq!((r.failed.as_str(), r.by.as_deref()), ("x", Some("w1")));
    }
}

#[cfg(test)]
mod raw_finding_tests {
    use super::*;

    fn read(id: &str, value: RawValue) -> std::result::Result<Finding, Unreadable> {
        let id = FindingId::new(id).unwrap();
        Finding::from_stored(
            &format!("finding:{id}"),
            &id,
            value,
            None,
            &BusLimits::default(),
        )
    }

    #[test]
    fn the_librarys_json_reads_as_written() {
        let f = Finding::new(
            WorkerId::new("w").unwrap(),
            SessionId::new("s").unwrap(),
            "t",
            "b",
        );
        let json = serde_json::to_string(&f).unwrap();
        let got = read(f.id.as_str(), RawValue::text(json.clone())).unwrap();
        assert_eq!(got, f);
        assert_eq!(got.origin(), FindingOrigin::Library);
        // Our shape under another id: the key wins, read as other JSON.
        let other = read("elsewhere", RawValue::text(json)).unwrap();
        assert_eq!(other.origin(), FindingOrigin::RawJson);
        assert_eq!(other.id.as_str(), "elsewhere");
        assert_eq!(other.title, "t");
    }

    #[test]
    fn json_scalars_and_blank_text_read_as_text_titled_by_the_id() {
        let n = read("n", RawValue::text("42")).unwrap();
        assert_eq!(
            (n.origin(), n.title.as_str()),
            (FindingOrigin::RawText, "42")
        );
        let blank = read("blank", RawValue::text("  \n ")).unwrap();
        assert_eq!(blank.title, "blank");
        assert_eq!(
            blank.created_at,
            DateTime::<Utc>::UNIX_EPOCH,
            "unknown time"
        );
    }

    #[test]
    fn a_long_first_line_is_cut_on_a_character_boundary() {
        let f = read("long", RawValue::text("é".repeat(500))).unwrap();
        assert_eq!(f.title.chars().count(), RAW_TITLE_CHARS + 1);
        assert!(f.title.ends_with('…'));
        assert_eq!(f.body.chars().count(), 500);
    }

    #[test]
    fn invalid_worker_or_session_fields_fall_back_to_unknown() {
        let f = read(
            "j",
            RawValue::text(r#"{"name": "n", "worker": "a b", "session": "x:y", "tags": "a, b"}"#),
        )
        .unwrap();
        assert_eq!(f.worker.as_str(), UNKNOWN);
        assert_eq!(f.session.as_str(), UNKNOWN);
        assert_eq!(f.title, "n");
        assert_eq!(f.tags.len(), 2);
    }

    #[test]
    fn binary_other_types_and_oversized_values_are_unreadable() {
        let bin = read("b", RawValue::String(vec![0xc3, 0x28])).unwrap_err();
        assert_eq!(bin.reason, UnreadableReason::NotText);
        assert_eq!(bin.key, "finding:b");
        let hash = read("h", RawValue::Hash(vec![(b"t".to_vec(), vec![0xff])])).unwrap_err();
        assert_eq!(hash.reason, UnreadableReason::NotText);
        let list = read(
            "l",
            RawValue::Other {
                found: "list".into(),
            },
        )
        .unwrap_err();
        assert!(matches!(Error::from(list), Error::WrongType { .. }));
        let id = FindingId::new("big").unwrap();
        let big = Finding::from_stored(
            "finding:big",
            &id,
            RawValue::text("x".repeat(11)),
            None,
            &BusLimits::default().max_value_bytes(10),
        )
        .unwrap_err();
        assert!(matches!(
            big.reason,
            UnreadableReason::TooLarge {
                size: 11,
                limit: 10
            }
        ));
    }
    /// Issue 19, row 9: a 256 KiB body of U+0001 (the CLI's and MCP's
    /// documented cap) was refused as "1573072 bytes, over the limit of
    /// 1048576": the limit counted the escaped JSON.
    #[test]
    fn the_value_limit_counts_the_text_not_its_json_escapes() {
        let limits = BusLimits::default();
        let w = WorkerId::new("w").unwrap();
        let s = SessionId::new("s").unwrap();
        let body = "\u{1}".repeat(256 * 1024);
        let f = Finding::new(w.clone(), s.clone(), "controls", body);
        assert!(encoded_len(&f).unwrap() > limits.max_value_bytes);
        limits.check_value(|| "finding:x".into(), &f).unwrap();
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json_text_len(&json), unescaped_len(&f).unwrap());
        limits.check_json(|| "finding:x".into(), &json).unwrap();
        // The limit itself still holds, escapes or not.
        let over = Finding::new(w, s, "big", "\n".repeat(1024 * 1024));
        let e = limits
            .check_value(|| "finding:y".into(), &over)
            .unwrap_err();
        assert!(
            matches!(e, Error::ValueTooLarge { ref key, size, .. } if key == "finding:y" && size > 1024 * 1024 && size < 1024 * 1024 + 1024),
            "{e:?}"
        );
        let json = serde_json::to_string(&over).unwrap();
        assert!(limits.check_json(|| "finding:y".into(), &json).is_err());
    }

    #[test]
    fn json_text_len_counts_what_escapes_stand_for() {
        for v in ["plain", "a\"b\\c\n\t", "\u{1}\u{1f}", "é ü €", "😀 x", ""] {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json_text_len(&json), v.len() + 2, "{json}");
        }
        // ASCII-only encoders' escapes: é (2), € (3), a surrogate pair (4).
        assert_eq!(
            json_text_len(r#""\u00e9\u20ac\ud83d\ude00""#),
            2 + 3 + 4 + 2
        );
        // A broken escape counts as written.
        assert_eq!(json_text_len(r#"\uZZZZ"#), 6);
    }
}
