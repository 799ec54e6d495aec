//! Findings: what a worker found ([`Finding`]), read from whatever was
//! stored under `finding:<id>` ([`RawValue`], [`FindingOrigin`],
//! [`Unreadable`]), and how to select them ([`FindingFilter`], [`Listing`]).
//!
//! Every struct here is `#[non_exhaustive]` so that fields can be added
//! without breaking users: build values with the constructors and `with_*`
//! methods. Unknown JSON fields are ignored on read, so values written by a
//! newer version still load.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bus::BusLimits;
use crate::codec::json_text_len;
use crate::error::{Error, Result};
use crate::keys::{FindingId, SessionId, TaskId, WorkerId};

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
}
