//! Bearer tokens of `swarm serve`: made and revoked by `swarm token`,
//! stored as SHA-256 digests in the namespace they grant
//! (`swarm:auth:tokens`), checked on every request.
//!
//! A token is `swm_` and 64 hex digits (244 random bits from two v4 UUIDs'
//! random parts). The server hashes what the client presents and compares
//! the digest with every stored one in constant time, so neither the token
//! nor how much of it matched leaks through timing; the token itself is
//! printed once, at creation, and never stored, logged or shown again.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Read findings, search, status, metrics.
    Read,
    /// Also store findings and work on tasks.
    Write,
    /// Also halt and resume the swarm.
    Admin,
}

impl Role {
    /// The role's name, as `--role` takes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role {other:?}: use read, write or admin")),
        }
    }
}

/// The stored record of a token (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    /// Short public id, for listing and revoking.
    pub(crate) id: String,
    /// What it may do.
    pub(crate) role: Role,
    /// The namespace it grants (empty for the default one).
    pub(crate) namespace: String,
    /// A free-text label ("ci", "laptop of …").
    #[serde(default)]
    pub(crate) label: String,
    /// When it was made.
    pub(crate) created_at: DateTime<Utc>,
}

/// A freshly made token: the secret (shown once) and what is stored.
pub(crate) struct NewToken {
    /// The bearer token itself.
    pub(crate) secret: String,
    /// Its digest (hex), the stored field.
    pub(crate) digest: String,
    /// Its record.
    pub(crate) record: TokenRecord,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("secret", &"<redacted>")
            .field("record", &self.record)
            .finish()
    }
}

/// Makes a new token for `namespace` with `role`.
pub(crate) fn mint(role: Role, namespace: &str, label: &str, now: DateTime<Utc>) -> NewToken {
    let secret = format!(
        "swm_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    NewToken {
        digest: digest(&secret),
        secret,
        record: TokenRecord {
            id,
            role,
            namespace: namespace.to_string(),
            label: label.to_string(),
            created_at: now,
        },
    }
}

/// SHA-256 of a token, lower-case hex.
pub(crate) fn digest(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in d {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The record whose digest equals the presented token's, compared in
/// constant time against every stored digest (no early exit). Records that
/// do not parse are skipped (they grant nothing).
pub(crate) fn find<'a>(
    presented: &str,
    stored: impl IntoIterator<Item = &'a (String, String)>,
) -> Option<TokenRecord> {
    let want = digest(presented);
    let mut found: Option<&'a String> = None;
    for (digest, record) in stored {
        let equal: bool = digest.as_bytes().ct_eq(want.as_bytes()).into();
        if equal {
            found = Some(record);
        }
    }
    found.and_then(|r| serde_json::from_str(r).ok())
}

/// The token of an `Authorization: Bearer …` header value.
pub(crate) fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// The role an MCP method (and tool, for `tools/call`) needs. Tools that
/// only read need `read`; halting and resuming need `admin`; every other
/// tool (storing, tasks, asking the librarian, which spends quota, and any
/// tool this list does not know) needs `write`.
pub(crate) fn needed_role(method: &str, tool: Option<&str>) -> Role {
    if method != "tools/call" {
        return Role::Read;
    }
    match tool.unwrap_or("") {
        "halt_swarm" | "resume_swarm" => Role::Admin,
        "swarm_status" => Role::Read,
        t if t.starts_with("get_")
            || t.starts_with("search_")
            || t.starts_with("list_")
            || t.starts_with("wait_")
            || t.starts_with("count_")
            || t.starts_with("export_") =>
        {
            Role::Read
        }
        _ => Role::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_is_found_by_its_digest_only() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let t = mint(Role::Write, "team-a", "ci", now);
        assert!(t.secret.starts_with("swm_") && t.secret.len() == 68);
        assert!(!format!("{t:?}").contains(&t.secret));
        let other = mint(Role::Admin, "team-a", "", now);
        let stored = vec![
            (
                other.digest.clone(),
                serde_json::to_string(&other.record).unwrap_or_default(),
            ),
            (
                t.digest.clone(),
                serde_json::to_string(&t.record).unwrap_or_default(),
            ),
        ];
        assert_eq!(find(&t.secret, &stored), Some(t.record.clone()));
        assert_eq!(
            find(&other.secret, &stored).map(|r| r.role),
            Some(Role::Admin)
        );
        let mut wrong = t.secret.clone();
        wrong.pop();
        wrong.push('x');
        assert_eq!(find(&wrong, &stored), None);
        assert_eq!(find("", &stored), None);
    }

    #[test]
    fn roles_of_methods_and_tools() {
        assert_eq!(needed_role("initialize", None), Role::Read);
        assert_eq!(needed_role("tools/list", None), Role::Read);
        assert_eq!(needed_role("tools/call", Some("get_finding")), Role::Read);
        assert_eq!(needed_role("tools/call", Some("swarm_status")), Role::Read);
        assert_eq!(needed_role("tools/call", Some("put_finding")), Role::Write);
        assert_eq!(
            needed_role("tools/call", Some("ask_librarian")),
            Role::Write
        );
        assert_eq!(
            needed_role("tools/call", Some("something_new")),
            Role::Write
        );
        assert_eq!(needed_role("tools/call", Some("halt_swarm")), Role::Admin);
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
