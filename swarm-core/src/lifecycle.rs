//! Findings that change: a new version replaces a finding and keeps the
//! old one, a deletion leaves a tombstone and keeps the last version, and
//! an expiry time deletes a finding when it passes.
//!
//! # Versions
//!
//! `finding:<id>` always holds the newest version, in the same JSON as
//! before (readers of the brief's key see nothing new). A finding never
//! updated is version 1; each [`FindingLifecycle::update_finding`] keeps the
//! value it replaces as version N and stores the new one as N + 1, in one
//! atomic step with the search index (the old document is retired, the new
//! one indexed). A citation names an id, so it stays valid: it reads the
//! newest version, and [`FindingLifecycle::finding_history`] gives every
//! version it may have meant (each with its own `created_at`).
//!
//! # Deletion
//!
//! [`FindingLifecycle::delete_finding`] keeps the last version among the
//! versions, writes a [`Tombstone`] (when, why, which version) and removes
//! `finding:<id>`, its place in the counts and listings and its index
//! document, all in one step: counts, the status block, searches and the
//! librarian no longer see it; the history (and so `swarm findings export`
//! and `swarm findings show --version`) still does. A put of a deleted id
//! is refused with [`crate::Error::Conflict`]: deletion is final for that
//! id (store the content under a new id instead).
//!
//! # Expiry
//!
//! [`FindingLifecycle::expire_findings`] sets (or clears) the time at which
//! findings are deleted, for the findings stored now;
//! [`FindingLifecycle::expire_session`] does it for every finding of a
//! session. An expired finding is deleted like any other (reason
//! [`Removal::Expired`]), by [`FindingLifecycle::sweep_expired`], which
//! every count, listing and search of both buses runs first with the
//! system clock: so no read ever returns a finding past its time, and the
//! index, which the deletion updates in the same step, stays equal to the
//! store. Nothing expires by a Redis TTL: a key that vanished on its own
//! would leave the counts and the index behind until a repair, and its last
//! version would be lost.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bus::FindingStore;
use crate::error::Result;
use crate::finding::Finding;
use crate::keys::{FindingId, SessionId};
use crate::search::{FindingIndex, SearchQuery};

/// One kept version of a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FindingVersion {
    /// Its number: 1 for the first.
    pub version: u32,
    /// What it said.
    pub finding: Finding,
}

impl FindingVersion {
    /// A version.
    pub fn new(version: u32, finding: Finding) -> Self {
        Self { version, finding }
    }
}

/// Why a finding was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Removal {
    /// [`FindingLifecycle::delete_finding`].
    Deleted,
    /// Its expiry time passed.
    Expired,
}

/// What is left of a deleted finding besides its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tombstone {
    /// The finding.
    pub id: FindingId,
    /// Its last version (kept in the history).
    pub version: u32,
    /// When it was removed.
    pub removed_at: DateTime<Utc>,
    /// Why.
    pub reason: Removal,
}

impl Tombstone {
    /// A tombstone.
    pub fn new(id: FindingId, version: u32, removed_at: DateTime<Utc>, reason: Removal) -> Self {
        Self {
            id,
            version,
            removed_at,
            reason,
        }
    }
}

/// Everything kept of one finding id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FindingHistory {
    /// The finding.
    pub id: FindingId,
    /// The versions `finding:<id>` no longer holds, oldest first: the
    /// replaced ones and, after a deletion, the last one.
    pub versions: Vec<FindingVersion>,
    /// The version number `finding:<id>` holds now; `None` once deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u32>,
    /// Set once deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstone: Option<Tombstone>,
}

impl FindingHistory {
    /// A history.
    pub fn new(
        id: FindingId,
        versions: Vec<FindingVersion>,
        current: Option<u32>,
        tombstone: Option<Tombstone>,
    ) -> Self {
        Self {
            id,
            versions,
            current,
            tombstone,
        }
    }

    /// Whether there is more than the current version (something an export
    /// must carry besides the finding itself).
    pub fn has_past(&self) -> bool {
        !self.versions.is_empty() || self.tombstone.is_some()
    }

    /// Version `n`: a kept one, or (`current` given) the one stored now.
    pub fn version(&self, n: u32, current: Option<&Finding>) -> Option<Finding> {
        if self.current == Some(n) {
            return current.cloned();
        }
        self.versions
            .iter()
            .find(|v| v.version == n)
            .map(|v| v.finding.clone())
    }
}

/// Updating, deleting and expiring findings (see the [module docs](self)).
#[async_trait]
pub trait FindingLifecycle: FindingStore + FindingIndex {
    /// Replaces the finding `revised.id` with `revised` (validated like a
    /// put): the value it replaces is kept as a version, the index follows
    /// in the same step, the archived state stays, and the new version is
    /// announced on `channel:findings` (not on the feed, which carries new
    /// findings). Returns the new version number; the same content again
    /// changes nothing and returns the current number. An unknown or
    /// deleted id is [`crate::Error::NotFound`].
    async fn update_finding(&self, revised: &Finding) -> Result<u32>;

    /// Deletes a finding (see the module docs): returns its tombstone; a
    /// finding already deleted returns the tombstone it has. An id never
    /// stored is [`crate::Error::NotFound`].
    async fn delete_finding(&self, id: &FindingId, at: DateTime<Utc>) -> Result<Tombstone>;

    /// What is kept of `id`; `None` for an id never stored.
    async fn finding_history(&self, id: &FindingId) -> Result<Option<FindingHistory>>;

    /// The histories of every id with a past (replaced versions or a
    /// tombstone), in no particular order: what an export adds to the
    /// findings themselves.
    async fn finding_histories(&self) -> Result<Vec<FindingHistory>>;

    /// Writes back an exported history: the kept versions and the tombstone
    /// (deleting `finding:<id>` if it is stored), and the version counter.
    /// Versions already kept are left as they are. Returns whether anything
    /// changed.
    async fn restore_history(&self, history: &FindingHistory) -> Result<bool>;

    /// Sets the time at which these findings are deleted (`None` clears
    /// it); ids not stored are skipped. Returns how many were set.
    async fn expire_findings(&self, ids: &[FindingId], at: Option<DateTime<Utc>>) -> Result<u64>;

    /// Deletes (as [`Removal::Expired`]) every finding whose expiry time is
    /// at or before `now`. Returns how many.
    async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<u64>;

    /// [`FindingLifecycle::expire_findings`] for every finding of
    /// `session` stored now, archived ones too. Returns how many were set.
    async fn expire_session(&self, session: &SessionId, at: Option<DateTime<Utc>>) -> Result<u64> {
        let mut set = 0;
        let mut query = SearchQuery::listing()
            .session(session.clone())
            .include_archived(true)
            .limit(crate::search::MAX_PAGE);
        loop {
            let page = self.search_findings(&query).await?;
            let ids: Vec<FindingId> = page.hits.into_iter().map(|h| h.id).collect();
            set += self.expire_findings(&ids, at).await?;
            match page.next_cursor {
                Some(c) => query = query.after(c),
                None => return Ok(set),
            }
        }
    }
}
