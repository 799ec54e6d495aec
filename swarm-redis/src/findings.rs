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
use swarmbus_core::bus::{FeedEntry, FindingFeed, FindingStore, Stored};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{Channel, FindingId, GroupName, Key, WorkerId};
use swarmbus_core::model::{Finding, FindingFilter, Listing, decode, encode};

use crate::bus::{RedisBus, Replay, int, items, text};
use crate::errors::{is_no_group, unexpected_reply};
use crate::scripts;

/// Findings per script call: big enough to amortise a round trip and the
/// script's own costs, small enough that one call holds Redis for a few
/// milliseconds at most (Lua's `unpack` also caps the arguments).
const FINDINGS_PER_SCRIPT: usize = 1000;

/// Script calls per round trip of a batch put.
const SCRIPTS_PER_TRIP: usize = 8;

/// One finding ready to be written.
struct Prepared {
    key: String,
    id: String,
    json: String,
    score: i64,
}

/// What one script call said.
enum PutReply {
    Stored(Vec<Stored>),
    Differs { index: usize, stored: Vec<u8> },
    WrongType { index: usize, found: String },
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
    fn finding_key(&self, id: &FindingId) -> String {
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
            self.check_size(&key, &json)?;
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
            });
        }
        Ok((prepared, slot_of))
    }

    fn put_script_call(&self, chunk: &[Prepared]) -> redis::Cmd {
        let names = self.names();
        let channel = self.inner.keys.channel(Channel::Findings);
        let mut keys: Vec<&str> = Vec::with_capacity(chunk.len() + 2);
        keys.push(&names.findings_active);
        keys.push(&names.feed);
        keys.extend(chunk.iter().map(|p| p.key.as_str()));
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(scripts::PUT_FINDINGS.get_hash())
            .arg(keys.len())
            .arg(&keys)
            .arg(&channel);
        for p in chunk {
            cmd.arg(&p.json).arg(&p.id).arg(p.score);
        }
        cmd
    }

    /// Before a batch that takes several script calls is written: fails
    /// with the conflict if any finding is stored with other content, so
    /// that a conflicting batch writes nothing. (One script call checks
    /// and writes atomically by itself.)
    async fn precheck(&self, prepared: &[Prepared]) -> Result<()> {
        let keys: Vec<String> = prepared.iter().map(|p| p.key.clone()).collect();
        let stored = self.mget("put_findings", &keys).await?;
        for (p, stored) in prepared.iter().zip(stored) {
            let Some(stored) = stored else { continue };
            if stored == p.json.as_bytes() {
                continue;
            }
            let raw = String::from_utf8(stored)
                .map_err(|e| Error::decode(&p.key, format!("not UTF-8: {e}")))?;
            let theirs: Finding = decode(&p.key, &raw)?;
            let ours: Finding = decode(&p.key, &p.json)?;
            if theirs != ours {
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
            let mut pipe = redis::pipe();
            for chunk in &group {
                pipe.add_command(self.put_script_call(chunk));
            }
            let replies: Vec<Value> =
                match self.pipeline_raw("put_findings", Replay::Safe, &pipe).await {
                    Ok(r) => r,
                    Err(e) => return Err(self.fail(&e, "put_findings")),
                };
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
                PutReply::Differs { index, stored } => {
                    let p = chunk
                        .get(index)
                        .ok_or_else(|| unexpected_reply("put_findings", "index"))?;
                    let raw = String::from_utf8(stored)
                        .map_err(|e| Error::decode(&p.key, format!("not UTF-8: {e}")))?;
                    let theirs: Finding = decode(&p.key, &raw)?;
                    let ours: Finding = decode(&p.key, &p.json)?;
                    if theirs != ours {
                        return Err(Error::Conflict { key: p.key.clone() });
                    }
                    known.push((positions.remove(index), Stored::AlreadyPresent));
                    chunk.remove(index);
                    if chunk.is_empty() {
                        known.sort_by_key(|(p, _)| *p);
                        return Ok(known.into_iter().map(|(_, s)| s).collect());
                    }
                    let cmd = self.put_script_call(&chunk);
                    let v: Value = self.query("put_findings", Replay::Safe, &cmd).await?;
                    reply = parse_put_reply(v)?;
                }
            }
        }
    }

    /// Decodes one stored finding, checking it is the one its key names.
    fn decode_finding(key: &str, id: &FindingId, raw: Vec<u8>) -> Result<Finding> {
        let raw =
            String::from_utf8(raw).map_err(|e| Error::decode(key, format!("not UTF-8: {e}")))?;
        let finding: Finding = decode(key, &raw)?;
        if finding.id != *id {
            return Err(Error::decode(
                key,
                format!("holds finding {} instead", finding.id),
            ));
        }
        Ok(finding)
    }

    /// For values MGET returned as nil: missing (`None`, also when a writer
    /// stored it right after the MGET) or of another type (an error naming
    /// the key).
    async fn explain_missing(&self, keys: Vec<String>) -> Result<Vec<Option<Error>>> {
        let types = self.key_types(&keys).await?;
        Ok(keys
            .into_iter()
            .zip(types)
            .map(|(key, found)| {
                // "string": written between the MGET and the TYPE by another
                // client; it was missing when read, which is the answer.
                if found == "none" || found == "string" {
                    None
                } else {
                    Some(Error::WrongType {
                        key,
                        expected: "string",
                        found,
                    })
                }
            })
            .collect())
    }

    /// Ids from an index within `[since, until]` in ms (inclusive bounds,
    /// refined by the filter afterwards).
    async fn index_range(&self, index: &str, filter: &FindingFilter) -> Result<Vec<String>> {
        let min = filter
            .since
            .map_or_else(|| "-inf".to_owned(), |t| t.timestamp_millis().to_string());
        let max = filter
            .until
            .map_or_else(|| "+inf".to_owned(), |t| t.timestamp_millis().to_string());
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(index).arg(min).arg(max);
        self.query("list_findings", Replay::Safe, &cmd).await
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
        let key = self.finding_key(id);
        let mut cmd = redis::cmd("GET");
        cmd.arg(&key);
        match self
            .query_raw::<Option<Vec<u8>>>("get_finding", Replay::Safe, &cmd)
            .await
        {
            Ok(None) => Ok(None),
            Ok(Some(raw)) => Self::decode_finding(&key, id, raw).map(Some),
            Err(e) => Err(self.fail_on_key(&e, "get_finding", &key, "string").await),
        }
    }

    async fn get_findings(&self, ids: &[FindingId]) -> Result<Vec<Option<Finding>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.finding_key(id)).collect();
        let values = self.mget("get_findings", &keys).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for ((id, key), value) in ids.iter().zip(&keys).zip(values) {
            match value {
                Some(raw) => out.push(Some(Self::decode_finding(key, id, raw)?)),
                None => {
                    missing.push(key.clone());
                    out.push(None);
                }
            }
        }
        if let Some(err) = self
            .explain_missing(missing)
            .await?
            .into_iter()
            .flatten()
            .next()
        {
            return Err(err);
        }
        Ok(out)
    }

    async fn list_findings(&self, filter: &FindingFilter) -> Result<Listing> {
        let mut ids = self
            .index_range(&self.names().findings_active, filter)
            .await?;
        if filter.include_archived {
            ids.extend(
                self.index_range(&self.names().findings_archived, filter)
                    .await?,
            );
        }
        let mut parsed = Vec::with_capacity(ids.len());
        let mut skipped = Vec::new();
        for id in ids {
            match FindingId::parse(&id) {
                Ok(fid) => parsed.push(fid),
                Err(_) => skipped.push(Error::decode(
                    &self.names().findings_active,
                    format!("index entry {id:?} is not a finding id"),
                )),
            }
        }
        let keys: Vec<String> = parsed.iter().map(|id| self.finding_key(id)).collect();
        let values = self.mget("list_findings", &keys).await?;
        let mut findings = Vec::new();
        let mut missing = Vec::new();
        for ((id, key), value) in parsed.into_iter().zip(keys).zip(values) {
            match value {
                Some(raw) => match Self::decode_finding(&key, &id, raw) {
                    Ok(f) => {
                        if filter.matches(&f) {
                            findings.push(f);
                        }
                    }
                    Err(e) => skipped.push(e),
                },
                None => missing.push(key),
            }
        }
        skipped.extend(self.explain_missing(missing).await?.into_iter().flatten());
        findings.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        findings.dedup_by(|a, b| a.id == b.id);
        if let Some(limit) = filter.limit {
            let cut = findings.len().saturating_sub(limit);
            findings.drain(..cut);
        }
        Ok(Listing::new(findings, skipped))
    }

    async fn count_findings(&self) -> Result<u64> {
        let mut cmd = redis::cmd("ZCARD");
        cmd.arg(&self.names().findings_active);
        self.query("count_findings", Replay::Safe, &cmd).await
    }

    async fn archive_findings(&self, ids: &[FindingId]) -> Result<u64> {
        let mut moved = 0;
        for chunk in ids.chunks(1000) {
            let names = self.names();
            let keys = [
                names.findings_active.as_str(),
                names.findings_archived.as_str(),
            ];
            let args: Vec<String> = chunk.iter().map(ToString::to_string).collect();
            let n: u64 = self
                .eval(
                    "archive_findings",
                    Replay::Safe,
                    &scripts::ARCHIVE_FINDINGS,
                    &keys,
                    &[&args],
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
        match self
            .query_raw::<Value>("read_feed", Replay::Safe, &cmd)
            .await
        {
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
                    dead.push(entry);
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
            Some(wait) => self.blocking("read_feed", Replay::Safe, &cmd, wait).await,
            None => self.query_raw("read_feed", Replay::Safe, &cmd).await,
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
            let reply: Value = match self.query_raw("claim_stale_feed", Replay::Safe, &cmd).await {
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
                let block = (!wait.is_zero()).then_some(wait);
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
                            after: wait + self.response_timeout(),
                        });
                    }
                    return Err(self
                        .fail_on_key(&e, "read_feed", &self.names().feed, "stream")
                        .await);
                }
            }
        }
    }

    async fn ack_feed(&self, group: &GroupName, entries: &[String]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.names().feed).arg(group.as_str()).arg(entries);
        let _: i64 = self.query("ack_feed", Replay::Safe, &cmd).await?;
        Ok(())
    }
}
