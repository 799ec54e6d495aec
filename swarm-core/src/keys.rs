//! The Redis key schema as typed values (DESIGN.md §2).
//!
//! Every key and channel of the brief formats to exactly the brief's string
//! and parses back ([`KeySpace::format`] / [`KeySpace::parse`]). Identifiers
//! are validated when they are made, so no caller can forge a key that
//! collides with another (`worker:status:a:b`, `finding:*`).
//!
//! An optional [`Namespace`] prefixes every key as `{ns}:`: a Redis Cluster
//! hash tag, so all keys of one swarm live in one slot and several swarms share
//! one Redis. Without a namespace the keys are exactly the brief's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::{Error, Result, shown};

/// The longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Checks a textual identifier: not empty, at most [`MAX_ID_LEN`] bytes, and
/// none of `:` `*` `?` `[` `]` `{` `}`, whitespace or control characters.
fn validate_text_id(kind: &'static str, input: &str) -> Result<()> {
    let reject = |reason| Error::InvalidId {
        kind,
        input: shown(input),
        reason,
    };
    if input.is_empty() {
        return Err(reject("must not be empty"));
    }
    if input.len() > MAX_ID_LEN {
        return Err(reject("longer than 128 bytes"));
    }
    for c in input.chars() {
        if c.is_whitespace() {
            return Err(reject("must not contain whitespace"));
        }
        if c.is_control() {
            return Err(reject("must not contain control characters"));
        }
        if matches!(c, ':' | '*' | '?' | '[' | ']' | '{' | '}') {
            return Err(reject(
                "must not contain ':', '*', '?', '[', ']', '{' or '}'",
            ));
        }
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `input` and wraps it.
            pub fn new(input: impl Into<String>) -> Result<Self> {
                let input = input.into();
                validate_text_id($kind, &input)?;
                Ok(Self(input))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_id!(
    /// A finding's id, as in `finding:<id>`: any valid identifier. The library
    /// makes a random uuid ([`FindingId::random`]); agents outside the library
    /// write names (`finding:deepseek_pricing`). The text is the key exactly:
    /// no case folding, so every stored key is reachable.
    FindingId,
    "finding id"
);
text_id!(
    /// A worker's identifier (`haiku-1`), as in `worker:status:<worker_id>`.
    WorkerId,
    "worker id"
);
text_id!(
    /// A session's identifier (`instance-11`): findings carry it so that a later
    /// session can ask what an earlier one found.
    SessionId,
    "session id"
);
text_id!(
    /// A tier's name as used in `cost:<tier>` (`sonnet`, `haiku`, `gemini`).
    TierName,
    "tier name"
);
text_id!(
    /// A consumer group of the durable finding feed.
    GroupName,
    "group name"
);
text_id!(
    /// A named counter of the library's own (budgets, usage totals).
    CounterName,
    "counter name"
);
text_id!(
    /// A named append-only journal (the cost ledger, drafts).
    JournalName,
    "journal name"
);

impl FindingId {
    /// A fresh random (v4) uuid id, in the hyphenated lower-case form.
    pub fn random() -> Self {
        Self::from_uuid(Uuid::new_v4())
    }

    /// The id of a uuid, in the hyphenated lower-case form
    /// (`67e55044-10b1-426f-9247-bb680e5fe0c8`).
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid.hyphenated().to_string())
    }

    /// Validates `input` as a finding id (same as [`FindingId::new`]).
    pub fn parse(input: &str) -> Result<Self> {
        Self::new(input)
    }

    /// The uuid, when the id is one in the hyphenated form.
    pub fn as_uuid(&self) -> Option<Uuid> {
        if self.0.len() != 36 {
            return None;
        }
        Uuid::try_parse(&self.0).ok()
    }
}

impl WorkerId {
    /// `unknown`: the worker of a finding written around the library that
    /// names none.
    pub(crate) fn unknown() -> Self {
        Self(crate::finding::UNKNOWN.to_owned())
    }
}

impl SessionId {
    /// `unknown`: the session of a finding written around the library that
    /// names none.
    pub(crate) fn unknown() -> Self {
        Self(crate::finding::UNKNOWN.to_owned())
    }
}

impl TierName {
    /// Wraps a name this crate knows is valid.
    pub(crate) fn from_trusted(name: &str) -> Self {
        debug_assert!(validate_text_id("tier name", name).is_ok());
        Self(name.to_owned())
    }

    /// The name with its first letter in upper case, as the status block shows
    /// it (`sonnet` → `Sonnet`).
    pub fn display_name(&self) -> String {
        let mut chars = self.0.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    }
}

/// A swarm namespace: prefixes every key as `{ns}:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Validates a namespace (same rules as identifiers, braces excluded, so
    /// the hash tag is exactly the namespace).
    pub fn new(input: impl Into<String>) -> Result<Self> {
        let input = input.into();
        validate_text_id("namespace", &input)?;
        Ok(Self(input))
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Wraps an existing uuid.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The uuid.
            pub const fn uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated form (`67e55044-10b1-426f-9247-bb680e5fe0c8`).
            pub fn parse(input: &str) -> Result<Self> {
                // Only the canonical hyphenated lower- or upper-case form, so that
                // one id has one key.
                if input.len() != 36 {
                    return Err(Error::InvalidId {
                        kind: $kind,
                        input: shown(input),
                        reason: "not a hyphenated uuid",
                    });
                }
                Uuid::try_parse(input)
                    .map(Self)
                    .map_err(|_| Error::InvalidId {
                        kind: $kind,
                        input: shown(input),
                        reason: "not a hyphenated uuid",
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// An archive query's id, as in `query:archive:<uuid>`.
    QueryId,
    "query id"
);
uuid_id!(
    /// A task's id.
    TaskId,
    "task id"
);

/// A librarian shard's number (1-based), as in `librarian:shard<N>:status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ShardId(u32);

impl ShardId {
    /// The largest shard number accepted.
    pub const MAX: u32 = 9_999;

    /// Validates a shard number: 1 to [`ShardId::MAX`].
    pub fn new(n: u32) -> Result<Self> {
        if n == 0 || n > Self::MAX {
            return Err(Error::InvalidId {
                kind: "shard number",
                input: n.to_string(),
                reason: "must be between 1 and 9999",
            });
        }
        Ok(Self(n))
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Parses the decimal form with no sign, no leading zero and no spaces.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = || Error::InvalidId {
            kind: "shard number",
            input: shown(input),
            reason: "must be a decimal number between 1 and 9999",
        };
        if input.is_empty()
            || input.len() > 4
            || input.starts_with('0')
            || !input.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        input.parse::<u32>().map_err(|_| bad()).and_then(Self::new)
    }
}

impl TryFrom<u32> for ShardId {
    type Error = Error;
    fn try_from(n: u32) -> Result<Self> {
        Self::new(n)
    }
}

impl From<ShardId> for u32 {
    fn from(s: ShardId) -> u32 {
        s.0
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A key of the brief's schema (without any namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Key {
    /// `finding:<id>`: STRING, JSON of a [`crate::Finding`] when the library
    /// wrote it; other JSON, plain text or a HASH when an agent outside the
    /// library did.
    Finding(FindingId),
    /// `query:archive:<uuid>`: STRING, JSON of an [`crate::ArchiveQuery`].
    QueryArchive(QueryId),
    /// `response:archive:<uuid>`: STRING, JSON of an [`crate::ArchiveResponse`].
    ResponseArchive(QueryId),
    /// `context:active`: STRING, integer token estimate.
    ContextActive,
    /// `worker:status:<worker_id>`: STRING heartbeat timestamp with a TTL.
    WorkerStatus(WorkerId),
    /// `worker:tasks:<worker_id>`: LIST of task JSON.
    WorkerTasks(WorkerId),
    /// `librarian:shard<N>:status`: STRING (`ok`, `cooling`, `exhausted`, `disabled`, `untested`).
    ShardStatus(ShardId),
    /// `librarian:shard<N>:quota`: STRING, integer remaining today.
    ShardQuota(ShardId),
    /// `halt:reason`: STRING, JSON of a [`crate::HaltReport`].
    HaltReason,
    /// `cost:<tier>`: STRING, float dollars.
    Cost(TierName),
}

impl fmt::Display for Key {
    /// The key as the brief writes it, without a namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Finding(id) => write!(f, "finding:{id}"),
            Key::QueryArchive(id) => write!(f, "query:archive:{id}"),
            Key::ResponseArchive(id) => write!(f, "response:archive:{id}"),
            Key::ContextActive => f.write_str("context:active"),
            Key::WorkerStatus(w) => write!(f, "worker:status:{w}"),
            Key::WorkerTasks(w) => write!(f, "worker:tasks:{w}"),
            Key::ShardStatus(n) => write!(f, "librarian:shard{n}:status"),
            Key::ShardQuota(n) => write!(f, "librarian:shard{n}:quota"),
            Key::HaltReason => f.write_str("halt:reason"),
            Key::Cost(t) => write!(f, "cost:{t}"),
        }
    }
}

impl FromStr for Key {
    type Err = Error;

    /// Parses a key without namespace.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidKey {
            key: shown(s),
            reason,
        };
        if let Some(rest) = s.strip_prefix("finding:") {
            return FindingId::parse(rest).map(Key::Finding);
        }
        if let Some(rest) = s.strip_prefix("query:archive:") {
            return QueryId::parse(rest).map(Key::QueryArchive);
        }
        if let Some(rest) = s.strip_prefix("response:archive:") {
            return QueryId::parse(rest).map(Key::ResponseArchive);
        }
        if s == "context:active" {
            return Ok(Key::ContextActive);
        }
        if let Some(rest) = s.strip_prefix("worker:status:") {
            return WorkerId::new(rest).map(Key::WorkerStatus);
        }
        if let Some(rest) = s.strip_prefix("worker:tasks:") {
            return WorkerId::new(rest).map(Key::WorkerTasks);
        }
        if let Some(rest) = s.strip_prefix("librarian:shard") {
            if let Some(n) = rest.strip_suffix(":status") {
                return ShardId::parse(n).map(Key::ShardStatus);
            }
            if let Some(n) = rest.strip_suffix(":quota") {
                return ShardId::parse(n).map(Key::ShardQuota);
            }
            return Err(bad("a librarian key ends in :status or :quota"));
        }
        if s == "halt:reason" {
            return Ok(Key::HaltReason);
        }
        if let Some(rest) = s.strip_prefix("cost:") {
            return TierName::new(rest).map(Key::Cost);
        }
        Err(bad("unknown key"))
    }
}

/// A pub/sub channel of the brief. Channels are notifications only: anything
/// that must not be lost is also kept durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// `channel:findings`: the message is the new finding's key.
    Findings,
    /// `channel:queries`: the message is the query's key.
    Queries,
    /// `channel:responses`: the message is the response's key.
    Responses,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::Findings, Channel::Queries, Channel::Responses];

    /// The channel name without namespace.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Findings => "channel:findings",
            Channel::Queries => "channel:queries",
            Channel::Responses => "channel:responses",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| Error::InvalidKey {
                key: shown(s),
                reason: "unknown channel",
            })
    }
}

/// Formats and parses keys and channels for one swarm, with its optional
/// namespace. The one key formatter of the project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

impl KeySpace {
    /// The brief's keys exactly, with no prefix.
    pub fn plain() -> Self {
        Self::default()
    }

    /// Keys prefixed with `{ns}:`.
    pub fn namespaced(ns: &Namespace) -> Self {
        Self {
            prefix: format!("{{{}}}:", ns.as_str()),
        }
    }

    /// The prefix (`""` or `"{ns}:"`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether a namespace is set.
    pub fn is_namespaced(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// The full key.
    pub fn format(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// The full channel name.
    pub fn channel(&self, channel: Channel) -> String {
        format!("{}{}", self.prefix, channel.as_str())
    }

    /// A key of the library's own (indices, counters, streams) under
    /// `swarm:<name>`, never colliding with the brief's keys.
    pub fn internal(&self, name: &str) -> String {
        format!("{}swarm:{}", self.prefix, name)
    }

    /// Parses a full key of this key space.
    pub fn parse(&self, full: &str) -> Result<Key> {
        let rest = full
            .strip_prefix(self.prefix.as_str())
            .ok_or_else(|| Error::InvalidKey {
                key: shown(full),
                reason: "key is not in this namespace",
            })?;
        rest.parse()
    }

    /// Parses a full channel name of this key space.
    pub fn parse_channel(&self, full: &str) -> Result<Channel> {
        let rest = full
            .strip_prefix(self.prefix.as_str())
            .ok_or_else(|| Error::InvalidKey {
                key: shown(full),
                reason: "channel is not in this namespace",
            })?;
        rest.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_format_to_the_brief_strings() {
        let ks = KeySpace::plain();
        let w = WorkerId::new("haiku-1").unwrap();
        assert_eq!(
            ks.format(&Key::WorkerStatus(w.clone())),
            "worker:status:haiku-1"
        );
        assert_eq!(ks.format(&Key::WorkerTasks(w)), "worker:tasks:haiku-1");
        let s = ShardId::new(3).unwrap();
        assert_eq!(ks.format(&Key::ShardQuota(s)), "librarian:shard3:quota");
        assert_eq!(ks.format(&Key::ShardStatus(s)), "librarian:shard3:status");
        assert_eq!(ks.format(&Key::HaltReason), "halt:reason");
        assert_eq!(ks.format(&Key::ContextActive), "context:active");
        let t = TierName::new("sonnet").unwrap();
        assert_eq!(ks.format(&Key::Cost(t)), "cost:sonnet");
        assert_eq!(ks.channel(Channel::Findings), "channel:findings");
    }

    #[test]
    fn a_namespace_is_a_hash_tag() {
        let ks = KeySpace::namespaced(&Namespace::new("team-a").unwrap());
        assert_eq!(ks.format(&Key::HaltReason), "{team-a}:halt:reason");
        assert_eq!(ks.parse("{team-a}:halt:reason").unwrap(), Key::HaltReason);
        assert!(ks.parse("halt:reason").is_err());
    }

    #[test]
    fn forged_ids_are_rejected_with_the_input_named() {
        let err = WorkerId::new("a:b").unwrap_err();
        assert!(err.to_string().contains("a:b"), "{err}");
        assert!(WorkerId::new("*").is_err());
        assert!(WorkerId::new("").is_err());
        assert!(WorkerId::new("x".repeat(129)).is_err());
        assert!(ShardId::new(0).is_err());
        assert!(ShardId::parse("01").is_err());
        assert!(FindingId::parse("a:b").is_err());
        assert!(FindingId::parse("finding*").is_err());
        assert!(FindingId::parse("has space").is_err());
        assert!(FindingId::parse("").is_err());
        assert!(FindingId::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn a_finding_id_is_any_valid_id_and_a_uuid_when_made_here() {
        let named = FindingId::new("deepseek_pricing").unwrap();
        assert_eq!(
            KeySpace::plain().format(&Key::Finding(named.clone())),
            "finding:deepseek_pricing"
        );
        assert_eq!(
            KeySpace::plain().parse("finding:deepseek_pricing").unwrap(),
            Key::Finding(named.clone())
        );
        assert_eq!(named.as_uuid(), None);
        let made = FindingId::random();
        assert!(made.as_uuid().is_some());
        assert_eq!(made.as_str(), made.as_str().to_lowercase());
        // The text is the key exactly: an upper-case uuid written by hand is
        // its own key, not folded onto another.
        let upper = FindingId::new("67E55044-10B1-426F-9247-BB680E5FE0C8").unwrap();
        assert_eq!(upper.as_str(), "67E55044-10B1-426F-9247-BB680E5FE0C8");
        assert!(KeySpace::plain().parse("finding:a:b").is_err());
        let json = serde_json::to_string(&named).unwrap();
        assert_eq!(json, "\"deepseek_pricing\"");
        assert!(serde_json::from_str::<FindingId>("\"a b\"").is_err());
    }

    #[test]
    fn tier_display_name_capitalises() {
        assert_eq!(TierName::new("haiku").unwrap().display_name(), "Haiku");
    }
}
