//! [`FindingStore`] and [`FindingFeed`]: findings as the brief's STRING
//! JSON under `finding:<uuid>`, an index for O(1) counting and ordered
//! listing, and a Redis Stream for consumer groups.
//!
//! A put is one script: SET if absent, index, XADD, PUBLISH, so a retried
//! put is stored, indexed, fed and announced once.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use swarmbus_core::bus::{FeedEntry, FeedEntryId, FindingFeed, FindingStore, Stored};
use swarmbus_core::codec::{decode, encode};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{Channel, FindingId, GroupName, Key, WorkerId};
use swarmbus_core::{Finding, FindingFilter, Listing, RawValue, Unreadable, UnreadableReason};

use crate::bus::{RedisBus, int, items, text};
use crate::errors::{is_no_group, unexpected_reply};
use crate::scripts;

/// Findings per script call: big enough to amortise a round trip and the
/// script's own costs, small enough that one call holds Redis for a few
/// milliseconds at most (each finding is also indexed in the same script:
/// a few dozen index writes) — Lua's `unpack` also caps the arguments.
const FINDINGS_PER_SCRIPT: usize = 1000;

/// Script calls per round trip of a batch put.
const SCRIPTS_PER_TRIP: usize = 8;

/// What a finding key held when read.
enum Read {
    /// No such key.
    Missing,
    /// A finding, library-written or raw.
    Found(Finding),
    /// A value that cannot be read.
    Unreadable(Unreadable),
}

/// The library's finding, when `bytes` is its JSON for `id`.
fn library_finding(id: &FindingId, bytes: &[u8]) -> Option<Finding> {
    let finding: Finding = serde_json::from_slice(bytes).ok()?;
    (finding.id == *id).then_some(finding)
}

/// Whether the stored bytes are the same finding as `ours` (our JSON);
/// anything else stored there (other bytes, a raw value) is not.
fn same_finding(key: &str, stored: &[u8], ours: &str) -> Result<bool> {
    let ours: Finding = decode(key, ours)?;
    Ok(library_finding(&ours.id, stored).is_some_and(|theirs| theirs == ours))
}

/// One finding ready to be written.
struct Prepared {
    key: String,
    id: String,
    json: String,
    score: i64,
    /// What the search index needs (see `index.rs`).
    index: crate::index::IndexEntry,
}

/// What one script call said.
enum PutReply {
    Stored(Vec<Stored>),
    Differs {
        index: usize,
        stored: Vec<u8>,
    },
    WrongType {
        index: usize,
        found: String,
    },
    /// The finding at `index` was deleted: its id is spent.
    Deleted {
        index: usize,
    },
}

fn parse_put_reply(v: Value) -> Result<PutReply> {
    let bad = |what: &str| unexpected_reply("put_findings", what);
    let mut it = items(v).ok_or_else(|| bad("not an array"))?.into_iter();
    let tag = it
        .next()
        .as_ref()
        .and_then(text)
        .ok_or_else(|| bad("no tag"))?;
    match tag.as_str() {
        "ok" => {
            let flags = it.next().as_ref().and_then(text).unwrap_or_default();
            flags
                .chars()
                .map(|c| match c {
                    '1' => Ok(Stored::New),
                    '0' => Ok(Stored::AlreadyPresent),
                    _ => Err(bad("bad status")),
                })
                .collect::<Result<Vec<_>>>()
                .map(PutReply::Stored)
        }
        "deleted" => {
            let index = it
                .next()
                .as_ref()
                .and_then(int)
                .ok_or_else(|| bad("no index"))?;
            let index = usize::try_from(index - 1).map_err(|_| bad("bad index"))?;
            Ok(PutReply::Deleted { index })
        }
        "differs" | "wrongtype" => {
            let index = it
                .next()
                .as_ref()
                .and_then(int)
                .ok_or_else(|| bad("no index"))?;
            let index = usize::try_from(index - 1).map_err(|_| bad("bad index"))?;
            let detail = it.next().ok_or_else(|| bad("no detail"))?;
            if tag == "differs" {
                let stored = match detail {
                    Value::BulkString(b) => b,
                    other => text(&other).unwrap_or_default().into_bytes(),
                };
                Ok(PutReply::Differs { index, stored })
            } else {
                Ok(PutReply::WrongType {
                    index,
                    found: text(&detail).unwrap_or_else(|| "unknown".into()),
                })
            }
        }
        other => Err(bad(other)),
    }
}

impl RedisBus {
    pub(crate) fn finding_key(&self, id: &FindingId) -> String {
        self.key(&Key::Finding(id.clone()))
    }

    /// Validates, encodes and size-checks every finding before anything is
    /// written; repeats of one id in the batch must be identical.
    fn prepare(&self, findings: &[Finding]) -> Result<(Vec<Prepared>, Vec<usize>)> {
        let mut prepared: Vec<Prepared> = Vec::with_capacity(findings.len());
        // For each input position, the index of its prepared entry.
        let mut slot_of = Vec::with_capacity(findings.len());
        let mut seen: HashMap<FindingId, usize> = HashMap::new();
        for finding in findings {
            finding.validate()?;
            let key = self.finding_key(&finding.id);
            let json = encode(&key, finding)?;
            self.check_json_size(&key, &json)?;
            if let Some(&at) = seen.get(&finding.id) {
                if prepared[at].json != json {
                    return Err(Error::Conflict { key });
                }
                slot_of.push(at);
                continue;
            }
            seen.insert(finding.id.clone(), prepared.len());
            slot_of.push(prepared.len());
            prepared.push(Prepared {
                key,
                id: finding.id.to_string(),
                json,
                score: finding.created_at.timestamp_millis(),
                index: crate::index::IndexEntry::of(finding),
            });
        }
        Ok((prepared, slot_of))
    }

    fn put_script_call(&self, chunk: &[Prepared], base: u32) -> redis::Cmd {
        let names = self.names();
        let channel = self.inner.keys.channel(Channel::Findings);
        let tombstones = self.tombstones_key();
        let mut keys: Vec<&str> = Vec::with_capacity(chunk.len() + 4);
        keys.push(&names.findings_active);
        keys.push(&names.feed);
        keys.push(&tombstones);
        keys.extend(chunk.iter().map(|p| p.key.as_str()));
        // The operation id (see `scripts::once`): last key, last argument.
        let (op_key, op_ttl) = self.op_args();
        keys.push(&op_key);
        let entries: Vec<&crate::index::IndexEntry> = chunk.iter().map(|p| &p.index).collect();
        let (times, groups) = crate::index::batch_writes(&entries, base);
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(scripts::PUT_FINDINGS.get_hash())
            .arg(keys.len())
            .arg(&keys)
            .arg(&channel)
            .arg(self.index_prefix())
            .arg(base)
            .arg(times.as_slice());
        for p in chunk {
            cmd.arg(&p.json)
                .arg(&p.id)
                .arg(p.score)
                .arg(p.index.length())
                .arg(p.index.fingerprint());
        }
        cmd.arg(groups.len());
        for (suffix, bytes) in &groups {
            cmd.arg(suffix).arg(bytes.as_slice());
        }
        cmd.arg(op_ttl);
        cmd
    }

    /// Before a batch that takes several script calls is written: fails
    /// with the conflict if any finding is stored with other content, so
    /// that a conflicting batch writes nothing. (One script call checks
    /// and writes atomically by itself.)
    async fn precheck(&self, prepared: &[Prepared]) -> Result<()> {
        // A deleted id is refused by the script too, but only within its
        // own call: here the whole batch is refused before any call.
        let mut dead = redis::cmd("HMGET");
        dead.arg(self.tombstones_key());
        for p in prepared {
            dead.arg(&p.id);
        }
        let dead: Vec<Option<String>> = self.query("put_findings", &dead).await?;
        if let Some((p, _)) = prepared.iter().zip(&dead).find(|(_, d)| d.is_some()) {
            return Err(Error::Conflict { key: p.key.clone() });
        }
        let keys: Vec<String> = prepared.iter().map(|p| p.key.clone()).collect();
        let stored = self.mget("put_findings", &keys).await?;
        for (p, stored) in prepared.iter().zip(stored) {
            let Some(stored) = stored else { continue };
            if stored == p.json.as_bytes() {
                continue;
            }
            if !same_finding(&p.key, &stored, &p.json)? {
                return Err(Error::Conflict { key: p.key.clone() });
            }
        }
        Ok(())
    }

    /// Writes prepared findings; returns the outcome of each.
    async fn put_prepared(&self, prepared: Vec<Prepared>) -> Result<Vec<Stored>> {
        if prepared.len() > FINDINGS_PER_SCRIPT {
            self.precheck(&prepared).await?;
        }
        let mut outcome = Vec::with_capacity(prepared.len());
        let mut pending: Vec<Vec<Prepared>> = Vec::new();
        let mut rest = prepared.into_iter().peekable();
        while rest.peek().is_some() {
            pending.push(rest.by_ref().take(FINDINGS_PER_SCRIPT).collect());
        }
        let mut pending = pending.into_iter().peekable();
        while pending.peek().is_some() {
            let group: Vec<Vec<Prepared>> = pending.by_ref().take(SCRIPTS_PER_TRIP).collect();
            let mut base = self.reserve_docs(group.iter().map(Vec::len).sum()).await?;
            let mut pipe = redis::pipe();
            for chunk in &group {
                pipe.add_command(self.put_script_call(chunk, base));
                base = base.saturating_add(u32::try_from(chunk.len()).unwrap_or(u32::MAX));
            }
            let replies: Vec<Value> = self.pipeline_once("put_findings", &pipe).await?;
            if replies.len() != group.len() {
                return Err(unexpected_reply("put_findings", "reply count"));
            }
            for (chunk, reply) in group.into_iter().zip(replies) {
                outcome.extend(self.settle_chunk(chunk, parse_put_reply(reply)?).await?);
            }
        }
        Ok(outcome)
    }

    /// Resolves a chunk whose script refused it: a stored value with other
    /// bytes but the same finding counts as already present, and the chunk
    /// is sent again without it.
    async fn settle_chunk(
        &self,
        mut chunk: Vec<Prepared>,
        mut reply: PutReply,
    ) -> Result<Vec<Stored>> {
        // Positions (in the original chunk) already known to be present.
        let mut known: Vec<(usize, Stored)> = Vec::new();
        let mut positions: Vec<usize> = (0..chunk.len()).collect();
        loop {
            match reply {
                PutReply::Stored(statuses) => {
                    if statuses.len() != chunk.len() {
                        return Err(unexpected_reply("put_findings", "status count"));
                    }
                    let mut all: Vec<(usize, Stored)> =
                        positions.iter().copied().zip(statuses).collect();
                    all.extend(known);
                    all.sort_by_key(|(p, _)| *p);
                    return Ok(all.into_iter().map(|(_, s)| s).collect());
                }
                PutReply::WrongType { index, found } => {
                    let key = chunk
                        .get(index)
                        .map(|p| p.key.clone())
                        .ok_or_else(|| unexpected_reply("put_findings", "index"))?;
                    return Err(Error::WrongType {
                        key,
                        expected: "string",
                        found,
                    });
                }
                PutReply::Deleted { index } => {
                    let key = chunk
                        .get(index)
                        .map(|p| p.key.clone())
                        .ok_or_else(|| unexpected_reply("put_findings", "index"))?;
                    return Err(Error::Conflict { key });
                }
                PutReply::Differs { index, stored } => {
                    let p = chunk
                        .get(index)
                        .ok_or_else(|| unexpected_reply("put_findings", "index"))?;
                    if !same_finding(&p.key, &stored, &p.json)? {
                        return Err(Error::Conflict { key: p.key.clone() });
                    }
                    known.push((positions.remove(index), Stored::AlreadyPresent));
                    chunk.remove(index);
                    if chunk.is_empty() {
                        known.sort_by_key(|(p, _)| *p);
                        return Ok(known.into_iter().map(|(_, s)| s).collect());
                    }
                    let base = self.reserve_docs(chunk.len()).await?;
                    let cmd = self.put_script_call(&chunk, base);
                    let v: Value = self.query_once("put_findings", &cmd).await?;
                    reply = parse_put_reply(v)?;
                }
            }
        }
    }

    /// Reads the values under these finding keys, whatever wrote them: one
    /// MGET for the STRINGs, then for the keys MGET saw as nil their TYPE and
    /// the fields of the HASHes. `times` are the index scores (ms) when the
    /// caller knows them; otherwise they are read for the raw values only.
    async fn read_findings(
        &self,
        ids: &[FindingId],
        times: Option<&[Option<i64>]>,
    ) -> Result<Vec<Read>> {
        let keys: Vec<String> = ids.iter().map(|id| self.finding_key(id)).collect();
        let values = self.mget("get_findings", &keys).await?;
        let mut raws: Vec<Option<RawValue>> = Vec::with_capacity(ids.len());
        let mut nil = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            if value.is_none() {
                nil.push(i);
            }
            raws.push(value.map(RawValue::String));
        }
        if !nil.is_empty() {
            let nil_keys: Vec<String> = nil.iter().filter_map(|i| keys.get(*i).cloned()).collect();
            let types = self.key_types(&nil_keys).await?;
            let mut hashes = Vec::new();
            for (i, found) in nil.iter().zip(types) {
                match found.as_str() {
                    // "string": written between the MGET and the TYPE by
                    // another client; it was missing when read.
                    "none" | "string" => {}
                    "hash" => hashes.push(*i),
                    _ => {
                        if let Some(slot) = raws.get_mut(*i) {
                            *slot = Some(RawValue::Other { found });
                        }
                    }
                }
            }
            if !hashes.is_empty() {
                let mut pipe = redis::pipe();
                for i in &hashes {
                    pipe.cmd("HGETALL").arg(keys.get(*i));
                }
                let fields: Vec<Vec<(Vec<u8>, Vec<u8>)>> = match self
                    .pipeline_raw("get_findings", &pipe)
                    .await
                {
                    Ok(f) => f,
                    // Replaced by another type since the TYPE: read again
                    // next time; now it is not a hash.
                    Err(e) if crate::errors::is_wrong_type(&e) => vec![Vec::new(); hashes.len()],
                    Err(e) => return Err(self.fail(&e, "get_findings")),
                };
                for (i, pairs) in hashes.into_iter().zip(fields) {
                    if let Some(slot) = raws.get_mut(i) {
                        // An empty reply: the hash was deleted meanwhile.
                        *slot = (!pairs.is_empty()).then_some(RawValue::Hash(pairs));
                    }
                }
            }
        }
        // Library findings first: they need no index time.
        let mut out: Vec<Option<Read>> = Vec::with_capacity(ids.len());
        let mut need_time = Vec::new();
        for (i, (id, raw)) in ids.iter().zip(raws.iter_mut()).enumerate() {
            match raw {
                None => out.push(Some(Read::Missing)),
                Some(RawValue::String(bytes)) => match library_finding(id, bytes) {
                    Some(f) => out.push(Some(Read::Found(f))),
                    None => {
                        out.push(None);
                        need_time.push(i);
                    }
                },
                Some(_) => {
                    out.push(None);
                    need_time.push(i);
                }
            }
        }
        let looked_up = match times {
            Some(_) => Vec::new(),
            None => {
                let wanted: Vec<&FindingId> =
                    need_time.iter().filter_map(|i| ids.get(*i)).collect();
                self.index_times(&wanted).await?
            }
        };
        for (n, i) in need_time.into_iter().enumerate() {
            let time = match times {
                Some(t) => t.get(i).copied().flatten(),
                None => looked_up.get(n).copied().flatten(),
            };
            let indexed_at = time.and_then(chrono::DateTime::from_timestamp_millis);
            let (Some(id), Some(key), Some(raw)) = (ids.get(i), keys.get(i), raws.get_mut(i))
            else {
                continue;
            };
            let Some(raw) = raw.take() else { continue };
            let read = match Finding::from_stored(key, id, raw, indexed_at, self.limits()) {
                Ok(f) => Read::Found(f),
                Err(u) => Read::Unreadable(u),
            };
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(read);
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or(Read::Missing))
            .collect())
    }

    /// When the index took these ids in (ms; active, else archived).
    async fn index_times(&self, ids: &[&FindingId]) -> Result<Vec<Option<i64>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let names = self.names();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("ZSCORE")
                .arg(&names.findings_active)
                .arg(id.as_str());
            pipe.cmd("ZSCORE")
                .arg(&names.findings_archived)
                .arg(id.as_str());
        }
        let scores: Vec<Option<f64>> = self.pipeline("get_findings", &pipe).await?;
        Ok(scores
            .chunks(2)
            .map(|pair| pair.iter().flatten().next().map(|ms| *ms as i64))
            .collect())
    }

    /// Ids and scores (ms) from an index within `[since, until]` (inclusive
    /// bounds, refined by the filter afterwards).
    async fn index_range(&self, index: &str, filter: &FindingFilter) -> Result<Vec<(String, f64)>> {
        let min = filter
            .since
            .map_or_else(|| "-inf".to_owned(), |t| t.timestamp_millis().to_string());
        let max = filter
            .until
            .map_or_else(|| "+inf".to_owned(), |t| t.timestamp_millis().to_string());
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(index).arg(min).arg(max).arg("WITHSCORES");
        self.query("list_findings", &cmd).await
    }
}

#[async_trait]
impl FindingStore for RedisBus {
    async fn put_finding(&self, finding: &Finding) -> Result<Stored> {
        let (prepared, _) = self.prepare(std::slice::from_ref(finding))?;
        let outcome = self.put_prepared(prepared).await?;
        outcome
            .into_iter()
            .next()
            .ok_or_else(|| unexpected_reply("put_finding", "no status"))
    }

    async fn put_findings(&self, findings: &[Finding]) -> Result<usize> {
        if findings.is_empty() {
            return Ok(0);
        }
        let (prepared, _) = self.prepare(findings)?;
        let outcome = self.put_prepared(prepared).await?;
        Ok(outcome.iter().filter(|s| **s == Stored::New).count())
    }

    async fn get_finding(&self, id: &FindingId) -> Result<Option<Finding>> {
        let mut found = self.get_findings(std::slice::from_ref(id)).await?;
        Ok(found.pop().flatten())
    }

    async fn get_findings(&self, ids: &[FindingId]) -> Result<Vec<Option<Finding>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.read_findings(ids, None)
            .await?
            .into_iter()
            .map(|read| match read {
                Read::Missing => Ok(None),
                Read::Found(f) => Ok(Some(f)),
                Read::Unreadable(u) => Err(Error::from(u)),
            })
            .collect()
    }

    async fn list_findings(&self, filter: &FindingFilter) -> Result<Listing> {
        self.sweep_due().await?;
        let mut entries = self
            .index_range(&self.names().findings_active, filter)
            .await?;
        if filter.include_archived {
            entries.extend(
                self.index_range(&self.names().findings_archived, filter)
                    .await?,
            );
        }
        let mut ids = Vec::with_capacity(entries.len());
        let mut times = Vec::with_capacity(entries.len());
        let mut unreadable = Vec::new();
        for (id, score) in entries {
            match FindingId::parse(&id) {
                Ok(fid) => {
                    ids.push(fid);
                    times.push(Some(score as i64));
                }
                Err(e) => unreadable.push(Unreadable::new(
                    self.names().findings_active.clone(),
                    UnreadableReason::InvalidId {
                        reason: e.to_string(),
                    },
                )),
            }
        }
        let reads = self.read_findings(&ids, Some(&times)).await?;
        let mut findings = Vec::new();
        let mut missing = Vec::new();
        for (id, read) in ids.into_iter().zip(reads) {
            match read {
                Read::Found(f) => {
                    if filter.matches(&f) {
                        findings.push(f);
                    }
                }
                Read::Unreadable(u) => unreadable.push(u),
                Read::Missing => missing.push(id),
            }
        }
        if !missing.is_empty() {
            // Deleted keys leave the index (and the count) when found
            // missing; the script checks again, so a key written meanwhile
            // stays.
            self.sync_finding_keys(&missing).await?;
        }
        findings.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        findings.dedup_by(|a, b| a.id == b.id);
        if let Some(limit) = filter.limit {
            let cut = findings.len().saturating_sub(limit);
            findings.drain(..cut);
        }
        Ok(Listing::new(findings, unreadable))
    }

    async fn count_findings(&self) -> Result<u64> {
        // One round trip when nothing has expired: the count and the check
        // for due expiries go together (see `lifecycle.rs`).
        let now = chrono::Utc::now();
        let mut pipe = redis::pipe();
        pipe.cmd("ZCARD").arg(&self.names().findings_active);
        pipe.cmd("ZRANGEBYSCORE")
            .arg(self.expiry_key())
            .arg("-inf")
            .arg(now.timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(1);
        let (n, due): (u64, Vec<String>) = self.pipeline("count_findings", &pipe).await?;
        if due.is_empty() {
            return Ok(n);
        }
        swarmbus_core::lifecycle::FindingLifecycle::sweep_expired(self, now).await?;
        let mut cmd = redis::cmd("ZCARD");
        cmd.arg(&self.names().findings_active);
        self.query("count_findings", &cmd).await
    }

    async fn archive_findings(&self, ids: &[FindingId]) -> Result<u64> {
        let mut moved = 0;
        for chunk in ids.chunks(1000) {
            let names = self.names();
            let (nums, bits) = (self.index_nums_key(), self.index_archived_key());
            let keys = [
                names.findings_active.as_str(),
                names.findings_archived.as_str(),
                nums.as_str(),
                bits.as_str(),
            ];
            let args: Vec<String> = chunk.iter().map(ToString::to_string).collect();
            let n: u64 = self
                .eval_once(
                    "archive_findings",
                    &scripts::ARCHIVE_FINDINGS,
                    &keys,
                    &[&args],
                    None,
                )
                .await?;
            moved += n;
        }
        Ok(moved)
    }
}

/// One stream entry: its id and the finding id it carries, if any.
fn parse_stream(reply: Value) -> Vec<(String, Option<String>)> {
    // [[stream, [[id, [field, value, …] | nil], …]]] (RESP2), or a map in
    // RESP3: {stream: [[id, fields], …]}.
    let streams: Vec<Value> = match reply {
        Value::Array(s) => s
            .into_iter()
            .filter_map(|s| items(s).and_then(|mut kv| (kv.len() == 2).then(|| kv.remove(1))))
            .collect(),
        Value::Map(m) => m.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        for entry in items(entries).unwrap_or_default() {
            let Some(mut parts) = items(entry) else {
                continue;
            };
            if parts.is_empty() {
                continue;
            }
            let fields = if parts.len() > 1 {
                parts.remove(1)
            } else {
                Value::Nil
            };
            let Some(id) = text(&parts[0]) else { continue };
            let mut finding = None;
            let flat: Vec<Value> = match fields {
                Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => items(other).unwrap_or_default(),
            };
            for pair in flat.chunks(2) {
                if let [k, v] = pair
                    && text(k).as_deref() == Some("finding")
                {
                    finding = text(v);
                }
            }
            out.push((id, finding));
        }
    }
    out
}

impl RedisBus {
    /// Creates the group at the start of the feed unless this handle knows
    /// it exists.
    async fn ensure_group(&self, group: &GroupName, force: bool) -> Result<()> {
        let known = self
            .inner
            .groups
            .lock()
            .map(|g| g.contains(group.as_str()))
            .unwrap_or(false);
        if known && !force {
            return Ok(());
        }
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.names().feed)
            .arg(group.as_str())
            .arg("0")
            .arg("MKSTREAM");
        match self.query_raw::<Value>("read_feed", &cmd).await {
            Ok(_) => {}
            Err(e) if e.code() == Some("BUSYGROUP") || e.to_string().contains("BUSYGROUP") => {}
            Err(e) => {
                return Err(self
                    .fail_on_key(&e, "read_feed", &self.names().feed, "stream")
                    .await);
            }
        }
        if let Ok(mut g) = self.inner.groups.lock() {
            g.insert(group.as_str().to_owned());
        }
        Ok(())
    }

    /// Turns stream entries into feed entries; entries whose finding was
    /// removed from the stream (nil fields) are acknowledged and dropped.
    async fn feed_entries(
        &self,
        group: &GroupName,
        raw: Vec<(String, Option<String>)>,
    ) -> Result<Vec<FeedEntry>> {
        let mut out = Vec::with_capacity(raw.len());
        let mut dead = Vec::new();
        for (entry, finding) in raw {
            match finding.as_deref().map(FindingId::parse) {
                Some(Ok(id)) => out.push(FeedEntry::new(entry, id)),
                _ => {
                    tracing::warn!(entry = %entry, "feed entry without a finding id; acknowledged and skipped");
                    dead.push(FeedEntryId::new(entry));
                }
            }
        }
        if !dead.is_empty() {
            self.ack_feed(group, &dead).await?;
        }
        Ok(out)
    }

    async fn xreadgroup(
        &self,
        group: &GroupName,
        consumer: &WorkerId,
        max: usize,
        from: &str,
        block: Option<Duration>,
    ) -> std::result::Result<Value, redis::RedisError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group.as_str())
            .arg(consumer.as_str())
            .arg("COUNT")
            .arg(max);
        if let Some(wait) = block {
            cmd.arg("BLOCK").arg(wait.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&self.names().feed).arg(from);
        match block {
            // Reading with ">" hands entries out; if the reply is lost they
            // stay pending for this consumer and the next call returns them
            // first, so a retry loses nothing.
            Some(wait) => self.blocking("read_feed", &cmd, wait).await,
            None => self.query_raw("read_feed", &cmd).await,
        }
    }
}

impl RedisBus {
    /// Takes over feed entries that other consumers of `group` received but
    /// have not acknowledged for at least `min_idle` (a consumer that
    /// crashed and will not come back under its name): they become
    /// `consumer`'s pending entries and are returned, up to `max`, like
    /// [`FindingFeed::read_feed`]'s. Acknowledge them with
    /// [`FindingFeed::ack_feed`]. (XAUTOCLAIM.)
    pub async fn claim_stale_feed(
        &self,
        group: &GroupName,
        consumer: &WorkerId,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<FeedEntry>> {
        self.ensure_group(group, false).await?;
        let mut out = Vec::new();
        let mut cursor = "0-0".to_owned();
        while out.len() < max {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&self.names().feed)
                .arg(group.as_str())
                .arg(consumer.as_str())
                .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&cursor)
                .arg("COUNT")
                .arg(max - out.len());
            // Claiming again after a lost reply only re-claims the same
            // entries for the same consumer.
            let reply: Value = match self.query_raw("claim_stale_feed", &cmd).await {
                Ok(v) => v,
                Err(e) => {
                    return Err(self
                        .fail_on_key(&e, "claim_stale_feed", &self.names().feed, "stream")
                        .await);
                }
            };
            let mut parts = items(reply).unwrap_or_default().into_iter();
            let next = parts
                .next()
                .as_ref()
                .and_then(text)
                .unwrap_or_else(|| "0-0".into());
            let claimed = parts.next().unwrap_or(Value::Nil);
            // Same shape as one stream of an XREAD reply.
            let raw = parse_stream(Value::Array(vec![Value::Array(vec![
                Value::BulkString(Vec::new()),
                claimed,
            ])]));
            out.extend(self.feed_entries(group, raw).await?);
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
        Ok(out)
    }
}

#[async_trait]
impl FindingFeed for RedisBus {
    async fn read_feed(
        &self,
        group: &GroupName,
        consumer: &WorkerId,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<FeedEntry>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        self.ensure_group(group, false).await?;
        let mut recreated = false;
        loop {
            // Own pending entries first (left over from a crash), then new.
            let attempt = async {
                let pending = self.xreadgroup(group, consumer, max, "0", None).await?;
                let pending = parse_stream(pending);
                if !pending.is_empty() {
                    return Ok(pending);
                }
                let block = (!wait.is_zero()).then_some(wait.min(crate::bus::MAX_BLOCK));
                let fresh = self.xreadgroup(group, consumer, max, ">", block).await?;
                Ok(parse_stream(fresh))
            };
            match attempt.await {
                Ok(raw) => return self.feed_entries(group, raw).await,
                Err(e) if is_no_group(&e) && !recreated => {
                    // The stream or group vanished (Redis lost its data, or
                    // someone deleted it): make it again and read.
                    recreated = true;
                    self.ensure_group(group, true).await?;
                }
                Err(e) => {
                    if e.is_timeout() {
                        return Err(Error::Timeout {
                            operation: "read_feed",
                            after: wait.saturating_add(self.response_timeout()),
                        });
                    }
                    return Err(self
                        .fail_on_key(&e, "read_feed", &self.names().feed, "stream")
                        .await);
                }
            }
        }
    }

    async fn ack_feed(&self, group: &GroupName, entries: &[FeedEntryId]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.names().feed).arg(group.as_str());
        for entry in entries {
            cmd.arg(entry.as_str());
        }
        let _: i64 = self.query("ack_feed", &cmd).await?;
        Ok(())
    }
}
