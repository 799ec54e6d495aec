//! [`FindingLifecycle`] on Redis: versions, tombstones and expiry (see
//! `swarmbus_core::lifecycle`), each change one script with the finding,
//! its place in the finding indices and its search-index document:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `swarm:findings:versions` | HASH | `<id>@v<N>` → the finding JSON of version N, once `finding:<id>` no longer holds it |
//! | `swarm:findings:heads` | HASH | id → the version number `finding:<id>` holds (the last one once deleted); absent: 1 |
//! | `swarm:findings:tombstones` | HASH | id → the tombstone JSON (`version`, `removed_at`, `reason`) |
//! | `swarm:findings:expiry` | ZSET | id → the time (ms) at which the finding is deleted |
//!
//! `finding:<id>` keeps its type and JSON: it holds the newest version,
//! and a deletion removes it.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{Script, Value};
use swarmbus_core::Finding;
use swarmbus_core::bus::FindingStore;
use swarmbus_core::codec::{decode, encode};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{Channel, FindingId};
use swarmbus_core::lifecycle::{
    FindingHistory, FindingLifecycle, FindingVersion, Removal, Tombstone,
};

use crate::bus::{RedisBus, int, items, text};
use crate::errors::unexpected_reply;
use crate::scripts::once;

/// Replaces a finding by a new version, keeping the old one.
///
/// KEYS: the finding key, active index, archived index, versions, heads,
/// tombstones. ARGV: id, index prefix, expected head, expected type,
/// expected bytes (a STRING's), the old version's JSON, the new JSON, the
/// new score (ms), the index payload, the findings channel. Reply: `{"ok",
/// head}`, `{"missing"}` or `{"moved"}` (changed since it was read).
static UPDATE_FINDING: LazyLock<Script> = LazyLock::new(|| {
    once(&format!(
        "local IDX = ARGV[2]\n{}\n{}",
        crate::index::INDEX_LUA,
        r#"
local key, id = KEYS[1], ARGV[1]
if redis.call('HEXISTS', KEYS[6], id) == 1 then return {'missing'} end
local ty = redis.call('TYPE', key)['ok']
if ty == 'none' then return {'missing'} end
local head = tonumber(redis.call('HGET', KEYS[5], id) or '1')
if head ~= tonumber(ARGV[3]) or ty ~= ARGV[4] then return {'moved'} end
if ty == 'string' then
  local cur = redis.call('GET', key)
  if cur == ARGV[7] then return {'ok', head} end
  if cur ~= ARGV[5] then return {'moved'} end
end
local archived = redis.call('ZSCORE', KEYS[3], id)
redis.call('HSET', KEYS[4], id .. '@v' .. head, ARGV[6])
-- SET replaces a value of any type (a raw HASH becomes the library's JSON).
redis.call('SET', key, ARGV[7])
redis.call('HSET', KEYS[5], id, head + 1)
if archived then
  redis.call('ZADD', KEYS[3], ARGV[8], id)
else
  redis.call('ZADD', KEYS[2], ARGV[8], id)
end
index_many({{id, ARGV[9], archived and true or false}})
redis.call('PUBLISH', ARGV[10], key)
return {'ok', head + 1}
"#
    ))
});

/// Deletes a finding: the last version kept, a tombstone written, the key,
/// its index entries, its expiry and its search document removed.
///
/// KEYS: the finding key, active index, archived index, versions, heads,
/// tombstones, expiry. ARGV: id, index prefix, expected head, expected
/// type, expected bytes, the last version's JSON, the tombstone JSON.
/// Reply: `{"ok"}`, `{"gone", tombstone}`, `{"missing"}` or `{"moved"}`.
static DELETE_FINDING: LazyLock<Script> = LazyLock::new(|| {
    once(&format!(
        "local IDX = ARGV[2]\n{}\n{}",
        crate::index::INDEX_LUA,
        r#"
local key, id = KEYS[1], ARGV[1]
local t = redis.call('HGET', KEYS[6], id)
if t then
  redis.call('ZREM', KEYS[7], id)
  return {'gone', t}
end
local ty = redis.call('TYPE', key)['ok']
if ty == 'none' then return {'missing'} end
local head = tonumber(redis.call('HGET', KEYS[5], id) or '1')
if head ~= tonumber(ARGV[3]) or ty ~= ARGV[4] then return {'moved'} end
if ty == 'string' and redis.call('GET', key) ~= ARGV[5] then return {'moved'} end
redis.call('HSET', KEYS[4], id .. '@v' .. head, ARGV[6])
redis.call('HSET', KEYS[5], id, head)
redis.call('HSET', KEYS[6], id, ARGV[7])
redis.call('DEL', key)
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[7], id)
retire(id)
return {'ok'}
"#
    ))
});

/// Writes back an exported history.
///
/// KEYS: as `DELETE_FINDING`. ARGV: id, index prefix, head, tombstone JSON
/// (empty: none), then (version, JSON) pairs. Reply: how many things
/// changed.
static RESTORE_HISTORY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "local IDX = ARGV[2]\n{}\n{}",
        crate::index::INDEX_LUA,
        r#"
local key, id = KEYS[1], ARGV[1]
local changed = 0
for i = 5, #ARGV - 1, 2 do
  changed = changed + redis.call('HSETNX', KEYS[4], id .. '@v' .. ARGV[i], ARGV[i + 1])
end
local head = tonumber(ARGV[3])
if head > tonumber(redis.call('HGET', KEYS[5], id) or '1') then
  redis.call('HSET', KEYS[5], id, head)
  changed = changed + 1
end
if ARGV[4] ~= '' and redis.call('HEXISTS', KEYS[6], id) == 0 then
  redis.call('HSET', KEYS[6], id, ARGV[4])
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[7], id)
  retire(id)
  changed = changed + 1
end
return changed
"#
    ))
});

/// Sets or clears expiry times of stored findings.
///
/// KEYS: expiry, then the finding keys. ARGV: the time (ms; empty clears),
/// then the ids. Reply: how many were stored.
static EXPIRE_FINDINGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if ARGV[1] == '' then
      redis.call('ZREM', KEYS[1], ARGV[i])
    else
      redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    end
    n = n + 1
  end
end
return n
"#,
    )
});

/// Scripts of this module, to load at connect time.
pub(crate) fn scripts() -> [&'static Script; 4] {
    [
        &UPDATE_FINDING,
        &DELETE_FINDING,
        &RESTORE_HISTORY,
        &EXPIRE_FINDINGS,
    ]
}

/// Attempts of an update or deletion whose finding changed between the
/// read and the write.
const ATTEMPTS: usize = 5;

/// The most versions read of one finding (a head beyond it is not ours).
const MAX_VERSIONS: u32 = 100_000;

/// Ids expired per sweep step.
const SWEEP_STEP: usize = 100;

/// What `finding:<id>` holds now, as a script checks it.
struct Current {
    head: u32,
    kind: &'static str,
    bytes: Vec<u8>,
    finding: Finding,
}

fn reply_tag(v: Value, op: &'static str) -> Result<(String, Vec<Value>)> {
    let mut it = items(v).ok_or_else(|| unexpected_reply(op, "not an array"))?;
    if it.is_empty() {
        return Err(unexpected_reply(op, "empty"));
    }
    let tag = text(&it.remove(0)).ok_or_else(|| unexpected_reply(op, "no tag"))?;
    Ok((tag, it))
}

impl RedisBus {
    fn versions_key(&self) -> String {
        self.internal("findings:versions")
    }
    fn heads_key(&self) -> String {
        self.internal("findings:heads")
    }
    pub(crate) fn tombstones_key(&self) -> String {
        self.internal("findings:tombstones")
    }
    pub(crate) fn expiry_key(&self) -> String {
        self.internal("findings:expiry")
    }

    /// The seven keys of a deletion (and a restore) of `id`.
    fn removal_keys(&self, id: &FindingId) -> [String; 7] {
        let names = self.names();
        [
            self.finding_key(id),
            names.findings_active.clone(),
            names.findings_archived.clone(),
            self.versions_key(),
            self.heads_key(),
            self.tombstones_key(),
            self.expiry_key(),
        ]
    }

    /// Reads `finding:<id>` and its version number; `None` when it is not
    /// stored or is deleted.
    async fn current(&self, id: &FindingId) -> Result<Option<Current>> {
        let key = self.finding_key(id);
        let mut pipe = redis::pipe();
        pipe.cmd("TYPE").arg(&key);
        pipe.cmd("HGET").arg(self.heads_key()).arg(id.as_str());
        pipe.cmd("HEXISTS")
            .arg(self.tombstones_key())
            .arg(id.as_str());
        let (ty, head, dead): (String, Option<u32>, bool) =
            self.pipeline("update_finding", &pipe).await?;
        if dead {
            return Ok(None);
        }
        let kind = match ty.as_str() {
            "string" => "string",
            "hash" => "hash",
            "none" => return Ok(None),
            other => {
                return Err(Error::WrongType {
                    key,
                    expected: "string",
                    found: other.to_owned(),
                });
            }
        };
        let bytes = if kind == "string" {
            self.mget("update_finding", std::slice::from_ref(&key))
                .await?
                .pop()
                .flatten()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let Some(finding) = self.get_finding(id).await? else {
            return Ok(None);
        };
        Ok(Some(Current {
            head: head.unwrap_or(1),
            kind,
            bytes,
            finding,
        }))
    }

    /// The JSON a replaced version is kept as: the stored bytes when they
    /// are the library's, else the finding as read, encoded.
    fn snapshot(&self, cur: &Current) -> Result<Vec<u8>> {
        if cur.kind == "string"
            && serde_json::from_slice::<Finding>(&cur.bytes).is_ok_and(|f| f == cur.finding)
        {
            return Ok(cur.bytes.clone());
        }
        let key = self.finding_key(&cur.finding.id);
        Ok(encode(&key, &cur.finding)?.into_bytes())
    }

    async fn remove(
        &self,
        id: &FindingId,
        at: DateTime<Utc>,
        reason: Removal,
    ) -> Result<Tombstone> {
        let key = self.finding_key(id);
        for _ in 0..ATTEMPTS {
            let cur = self.current(id).await?;
            let (head, kind, bytes, snapshot) = match &cur {
                Some(c) => (c.head, c.kind, c.bytes.clone(), self.snapshot(c)?),
                // Not stored: the script answers with the tombstone, if any.
                None => (0, "none", Vec::new(), Vec::new()),
            };
            let tomb = Tombstone::new(id.clone(), head, at, reason);
            let tomb_json = serde_json::to_string(&tomb)
                .map_err(|e| Error::decode(self.tombstones_key(), e))?;
            let keys = self.removal_keys(id);
            let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let prefix = self.index_prefix();
            let reply: Value = self
                .eval_once(
                    "delete_finding",
                    &DELETE_FINDING,
                    &key_refs,
                    &[
                        &id.as_str(),
                        &prefix,
                        &head,
                        &kind,
                        &bytes,
                        &snapshot,
                        &tomb_json,
                    ],
                    None,
                )
                .await?;
            let (tag, rest) = reply_tag(reply, "delete_finding")?;
            match tag.as_str() {
                "ok" => return Ok(tomb),
                "gone" => {
                    let t = rest
                        .first()
                        .and_then(text)
                        .ok_or_else(|| unexpected_reply("delete_finding", "no tombstone"))?;
                    return decode(&self.tombstones_key(), &t);
                }
                "missing" => return Err(Error::NotFound { key }),
                "moved" if cur.is_none() => return Err(Error::NotFound { key }),
                "moved" => continue,
                other => return Err(unexpected_reply("delete_finding", other)),
            }
        }
        Err(Error::Conflict { key })
    }

    /// [`FindingLifecycle::sweep_expired`] with the system clock, before a
    /// count, listing or search: one ZRANGEBYSCORE when nothing is due.
    pub(crate) async fn sweep_due(&self) -> Result<()> {
        self.sweep_expired(Utc::now()).await.map(|_| ())
    }

    async fn history_of(&self, id: &FindingId) -> Result<Option<FindingHistory>> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGET").arg(self.heads_key()).arg(id.as_str());
        pipe.cmd("HGET").arg(self.tombstones_key()).arg(id.as_str());
        pipe.cmd("EXISTS").arg(self.finding_key(id));
        let (head, tomb, exists): (Option<u32>, Option<String>, bool) =
            self.pipeline("finding_history", &pipe).await?;
        let tombstone: Option<Tombstone> = tomb
            .map(|t| decode(&self.tombstones_key(), &t))
            .transpose()?;
        if head.is_none() && tombstone.is_none() {
            return Ok(exists.then(|| FindingHistory::new(id.clone(), Vec::new(), Some(1), None)));
        }
        let head = head.unwrap_or(1);
        let last = if tombstone.is_some() {
            head
        } else {
            head.saturating_sub(1)
        }
        .min(MAX_VERSIONS);
        let mut versions = Vec::new();
        if last >= 1 {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(self.versions_key());
            for n in 1..=last {
                cmd.arg(format!("{id}@v{n}"));
            }
            let found: Vec<Option<String>> = self.query("finding_history", &cmd).await?;
            for (n, json) in (1..=last).zip(found) {
                if let Some(json) = json {
                    let f: Finding = decode(&self.versions_key(), &json)?;
                    versions.push(FindingVersion::new(n, f));
                }
            }
        }
        let current = (tombstone.is_none() && exists).then_some(head);
        Ok(Some(FindingHistory::new(
            id.clone(),
            versions,
            current,
            tombstone,
        )))
    }
}

#[async_trait]
impl FindingLifecycle for RedisBus {
    async fn update_finding(&self, revised: &Finding) -> Result<u32> {
        revised.validate()?;
        let key = self.finding_key(&revised.id);
        let json = encode(&key, revised)?;
        self.check_json_size(&key, &json)?;
        let (payload, _) = crate::index::payload(revised);
        let channel = self.inner.keys.channel(Channel::Findings);
        let names = self.names();
        let (versions, heads, tombs) =
            (self.versions_key(), self.heads_key(), self.tombstones_key());
        let keys = [
            key.as_str(),
            names.findings_active.as_str(),
            names.findings_archived.as_str(),
            versions.as_str(),
            heads.as_str(),
            tombs.as_str(),
        ];
        let prefix = self.index_prefix();
        for _ in 0..ATTEMPTS {
            let Some(cur) = self.current(&revised.id).await? else {
                return Err(Error::NotFound { key });
            };
            if cur.finding == *revised {
                return Ok(cur.head);
            }
            let snapshot = self.snapshot(&cur)?;
            let reply: Value = self
                .eval_once(
                    "update_finding",
                    &UPDATE_FINDING,
                    &keys,
                    &[
                        &revised.id.as_str(),
                        &prefix,
                        &cur.head,
                        &cur.kind,
                        &cur.bytes,
                        &snapshot,
                        &json,
                        &revised.created_at.timestamp_millis(),
                        &payload,
                        &channel,
                    ],
                    None,
                )
                .await?;
            let (tag, rest) = reply_tag(reply, "update_finding")?;
            match tag.as_str() {
                "ok" => {
                    let head = rest
                        .first()
                        .and_then(int)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| unexpected_reply("update_finding", "no version"))?;
                    return Ok(head);
                }
                "missing" => return Err(Error::NotFound { key }),
                "moved" => continue,
                other => return Err(unexpected_reply("update_finding", other)),
            }
        }
        Err(Error::Conflict { key })
    }

    async fn delete_finding(&self, id: &FindingId, at: DateTime<Utc>) -> Result<Tombstone> {
        self.remove(id, at, Removal::Deleted).await
    }

    async fn finding_history(&self, id: &FindingId) -> Result<Option<FindingHistory>> {
        self.history_of(id).await
    }

    async fn finding_histories(&self) -> Result<Vec<FindingHistory>> {
        let mut ids: Vec<String> = Vec::new();
        for hash in [self.heads_key(), self.tombstones_key()] {
            let mut cmd = redis::cmd("HKEYS");
            cmd.arg(hash);
            let keys: Vec<String> = self.query("finding_histories", &cmd).await?;
            ids.extend(keys);
        }
        ids.sort();
        ids.dedup();
        let mut out = Vec::new();
        for id in ids {
            let Ok(id) = FindingId::parse(&id) else {
                continue;
            };
            if let Some(h) = self.history_of(&id).await?
                && h.has_past()
            {
                out.push(h);
            }
        }
        Ok(out)
    }

    async fn restore_history(&self, history: &FindingHistory) -> Result<bool> {
        let id = &history.id;
        let mut args: Vec<Vec<u8>> = vec![
            id.as_str().as_bytes().to_vec(),
            self.index_prefix().into_bytes(),
        ];
        let head = history
            .current
            .or(history.tombstone.as_ref().map(|t| t.version))
            .unwrap_or(1);
        args.push(head.to_string().into_bytes());
        let tomb = match &history.tombstone {
            Some(t) => {
                serde_json::to_string(t).map_err(|e| Error::decode(self.tombstones_key(), e))?
            }
            None => String::new(),
        };
        args.push(tomb.into_bytes());
        for v in &history.versions {
            v.finding.validate()?;
            if v.finding.id != *id {
                return Err(Error::InvalidInput {
                    field: "versions",
                    reason: format!("version {} is of another finding", v.version),
                });
            }
            let json = encode(&self.versions_key(), &v.finding)?;
            args.push(v.version.to_string().into_bytes());
            args.push(json.into_bytes());
        }
        let keys = self.removal_keys(id);
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        // Idempotent (HSETNX, a larger head, a tombstone once): a repeat
        // after a lost reply changes nothing more.
        let n: u64 = self
            .eval("restore_history", &RESTORE_HISTORY, &key_refs, &[&args])
            .await?;
        Ok(n > 0)
    }

    async fn expire_findings(&self, ids: &[FindingId], at: Option<DateTime<Utc>>) -> Result<u64> {
        let mut set = 0;
        let when = at.map_or_else(String::new, |t| t.timestamp_millis().to_string());
        for chunk in ids.chunks(500) {
            let expiry = self.expiry_key();
            let keys: Vec<String> = chunk.iter().map(|id| self.finding_key(id)).collect();
            let mut all: Vec<&str> = vec![&expiry];
            all.extend(keys.iter().map(String::as_str));
            let args: Vec<&str> = chunk.iter().map(FindingId::as_str).collect();
            let n: u64 = self
                .eval("expire_findings", &EXPIRE_FINDINGS, &all, &[&when, &args])
                .await?;
            set += n;
        }
        Ok(set)
    }

    async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut swept = 0;
        loop {
            let mut cmd = redis::cmd("ZRANGEBYSCORE");
            cmd.arg(self.expiry_key())
                .arg("-inf")
                .arg(now.timestamp_millis())
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(SWEEP_STEP);
            let due: Vec<(String, f64)> = self.query("sweep_expired", &cmd).await?;
            let n = due.len();
            for (id, ms) in due {
                let at = DateTime::from_timestamp_millis(ms as i64).unwrap_or(now);
                let gone = match FindingId::parse(&id) {
                    Ok(fid) => match self.remove(&fid, at, Removal::Expired).await {
                        Ok(_) => {
                            swept += 1;
                            false
                        }
                        // Deleted meanwhile or unreadable: nothing to expire.
                        Err(e) if e.key().is_some() => true,
                        Err(e) => return Err(e),
                    },
                    Err(_) => true,
                };
                if gone {
                    let mut zrem = redis::cmd("ZREM");
                    zrem.arg(self.expiry_key()).arg(&id);
                    let _: i64 = self.query("sweep_expired", &zrem).await?;
                }
            }
            if n < SWEEP_STEP {
                return Ok(swept);
            }
        }
    }
}
