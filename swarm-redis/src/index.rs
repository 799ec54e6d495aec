//! The findings search index on Redis ([`FindingIndex`]), in the layout of
//! `swarmbus_core::search` under `swarm:fx:` (in the namespace's hash slot,
//! so every script stays atomic on a Cluster):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `swarm:fx:stats` | HASH | `n` documents numbered, `live` documents, `len` their total length, `dead` retired documents not yet compacted |
//! | `swarm:fx:ids` | HASH | document number → finding id (live documents) |
//! | `swarm:fx:nums` | HASH | finding id → `<doc> <length> <fingerprint>` |
//! | `swarm:fx:live`, `swarm:fx:archived` | STRING bitmaps | bit per document |
//! | `swarm:fx:times` | STRING | 8 bytes per document: creation ms |
//! | `swarm:fx:t:<term>` | STRING | postings, 6 bytes each |
//! | `swarm:fx:f:<filter>` | STRING | document numbers of a tag, session or worker |
//!
//! A library put indexes its findings inside the put script (one atomic
//! step with the finding, its feed entry and its notification). Findings
//! written before the index existed and raw values are indexed by
//! [`RedisBus::index_ids`] (called by adoption and by the reindex), whose
//! script checks that the value is still the one tokenised. The terms come
//! from Rust: the script never tokenises.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use async_trait::async_trait;
use redis::{Script, Value};
use swarmbus_core::error::Result;
use swarmbus_core::keys::FindingId;
use swarmbus_core::search::{
    DocTerms, FindingIndex, IndexReport, IndexView, SearchHit, SearchPage, SearchQuery,
    filter_names, list, rank,
};
use swarmbus_core::{Finding, RawValue};

use crate::bus::{RedisBus, items};
use crate::errors::unexpected_reply;

/// Lua shared by the scripts that change the index. `IDX` (the key prefix
/// `swarm:fx:`) must be set before they run.
pub(crate) const INDEX_LUA: &str = r#"
local function split(s, sep)
  local out, i = {}, 1
  while true do
    local j = string.find(s, sep, i, true)
    if not j then out[#out + 1] = string.sub(s, i); return out end
    out[#out + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end
local function retire(id)
  local old = redis.call('HGET', IDX .. 'nums', id)
  if not old then return 0 end
  local f = split(old, ' ')
  local doc = tonumber(f[1])
  redis.call('SETBIT', IDX .. 'live', doc, 0)
  redis.call('HDEL', IDX .. 'nums', id)
  redis.call('HDEL', IDX .. 'ids', doc)
  redis.call('HINCRBY', IDX .. 'stats', 'live', -1)
  redis.call('HINCRBY', IDX .. 'stats', 'len', -tonumber(f[2]))
  redis.call('HINCRBY', IDX .. 'stats', 'dead', 1)
  return 1
end
-- payload: ms \30 length \30 norm \30 fingerprint \30 filters (\31) \30 term \31 weight …
-- docs: a list of {id, payload, archived}. Writes grouped: one APPEND per
-- distinct term and filter of the batch, one HSET per hash.
local function index_many(docs)
  local k = #docs
  if k == 0 then return end
  local ids = {}
  for i = 1, k do ids[i] = docs[i][1] end
  local old = redis.call('HMGET', IDX .. 'nums', unpack(ids))
  for i = 1, k do
    if old[i] then retire(ids[i]) end
  end
  local base = redis.call('HINCRBY', IDX .. 'stats', 'n', k) - k
  local hids, hnums, times, bufs, order = {}, {}, {}, {}, {}
  local total = 0
  local live = IDX .. 'live'
  local function add(key, piece)
    local b = bufs[key]
    if not b then b = {}; bufs[key] = b; order[#order + 1] = key end
    b[#b + 1] = piece
  end
  local FP, TP = IDX .. 'f:', IDX .. 't:'
  for i = 1, k do
    local doc = base + i - 1
    local id, payload, archived = docs[i][1], docs[i][2], docs[i][3]
    local f = split(payload, '\30')
    local ms, len, norm = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
    hids[#hids + 1] = doc
    hids[#hids + 1] = id
    hnums[#hnums + 1] = id
    hnums[#hnums + 1] = doc .. ' ' .. len .. ' ' .. f[4]
    redis.call('SETBIT', live, doc, 1)
    if archived then redis.call('SETBIT', IDX .. 'archived', doc, 1) end
    local hi = math.floor(ms / 4294967296)
    times[i] = struct.pack('>i4I4', hi, ms - hi * 4294967296)
    total = total + len
    local d = struct.pack('>I4', doc)
    if f[5] ~= '' then
      for _, name in ipairs(split(f[5], '\31')) do add(FP .. name, d) end
    end
    if f[6] and f[6] ~= '' then
      local t = split(f[6], '\31')
      local tail = string.char(norm)
      for j = 1, #t - 1, 2 do
        add(TP .. t[j], d .. string.char(tonumber(t[j + 1])) .. tail)
      end
    end
  end
  redis.call('HSET', IDX .. 'ids', unpack(hids))
  redis.call('HSET', IDX .. 'nums', unpack(hnums))
  redis.call('SETRANGE', IDX .. 'times', base * 8, table.concat(times))
  redis.call('HINCRBY', IDX .. 'stats', 'live', k)
  redis.call('HINCRBY', IDX .. 'stats', 'len', total)
  for _, key in ipairs(order) do redis.call('APPEND', key, table.concat(bufs[key])) end
end
"#;

/// Reads what a search needs in one atomic step.
///
/// KEYS: stats, live, archived, times (or the stats key again when no time
/// filter is set), then the term keys, then the filter keys. Reply: `{n,
/// live, len, live bits, archived bits, times, postings…}`.
static SEARCH_FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local s = redis.call('HMGET', KEYS[1], 'n', 'live', 'len')
local out = {s[1] or '0', s[2] or '0', s[3] or '0',
  redis.call('GET', KEYS[2]) or '', redis.call('GET', KEYS[3]) or ''}
if KEYS[4] ~= KEYS[1] then out[6] = redis.call('GET', KEYS[4]) or '' else out[6] = '' end
for i = 5, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) or '' end
return out
"#,
    )
});

/// Indexes (or retires) findings already stored, when their value is still
/// the one tokenised.
///
/// KEYS: active index, archived index, then the finding keys. ARGV: the
/// index prefix, then per key: id, `s` (a STRING, then its bytes) or `h` (a
/// HASH, then its fields canonically: field \0 value \0, sorted) or `-`
/// (missing: retire), then the payload, then its fingerprint (a document
/// with the same fingerprint and archived state is left alone). Reply: how
/// many changed.
pub(crate) static INDEX_STORED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
local IDX = ARGV[1]
{INDEX_LUA}
local changed = 0
local docs = {{}}
for i = 3, #KEYS do
  local a = (i - 3) * 5 + 2
  local id, kind, want, payload, fp = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local key = KEYS[i]
  local active = redis.call('ZSCORE', KEYS[1], id)
  local archived = redis.call('ZSCORE', KEYS[2], id)
  local ty = redis.call('TYPE', key)['ok']
  if kind == '-' or not (active or archived) then
    if ty == 'none' or not (active or archived) then changed = changed + retire(id) end
  else
    local same = false
    if kind == 's' and ty == 'string' then
      same = redis.call('GET', key) == want
    elseif kind == 'h' and ty == 'hash' then
      local flat = redis.call('HGETALL', key)
      local pairs_ = {{}}
      for k = 1, #flat, 2 do pairs_[#pairs_ + 1] = {{flat[k], flat[k + 1]}} end
      table.sort(pairs_, function(x, y) return x[1] < y[1] end)
      local parts = {{}}
      for _, p in ipairs(pairs_) do parts[#parts + 1] = p[1] .. '\0' .. p[2] .. '\0' end
      same = table.concat(parts) == want
    end
    local cur = redis.call('HGET', IDX .. 'nums', id)
    if same and cur then
      local c = split(cur, ' ')
      local bit_now = redis.call('GETBIT', IDX .. 'archived', tonumber(c[1])) == 1
      if c[3] == fp and bit_now == (archived and true or false) then same = false end
    end
    if same then
      docs[#docs + 1] = {{id, payload, archived and true or false}}
      changed = changed + 1
    end
  end
end
index_many(docs)
return changed
"#
    ))
});

/// Drops the postings of retired documents from some posting and filter
/// strings. KEYS: live bitmap, stats, then the strings. ARGV: bytes per
/// entry of each string (6 or 4). Reply: entries dropped.
static COMPACT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local live = redis.call('GET', KEYS[1]) or ''
local function alive(doc)
  local byte = string.byte(live, math.floor(doc / 8) + 1) or 0
  return bit.band(byte, bit.rshift(128, doc % 8)) ~= 0
end
local dropped = 0
for i = 3, #KEYS do
  local w = tonumber(ARGV[i - 2])
  local s = redis.call('GET', KEYS[i])
  if s then
    local keep = {}
    for p = 1, #s - w + 1, w do
      local doc = struct.unpack('>I4', s, p)
      if alive(doc) then keep[#keep + 1] = string.sub(s, p, p + w - 1) else dropped = dropped + 1 end
    end
    if #keep == 0 then redis.call('DEL', KEYS[i]) else redis.call('SET', KEYS[i], table.concat(keep)) end
  end
end
return dropped
"#,
    )
});

/// Scripts of this module, to load at connect time.
pub(crate) fn scripts() -> [&'static Script; 3] {
    [&SEARCH_FETCH, &INDEX_STORED, &COMPACT]
}

/// A fingerprint of what the index holds of a finding (its terms, filters,
/// time), to tell a stale document.
fn fingerprint(terms: &DocTerms, filters: &[String], ms: i64) -> u64 {
    // FNV-1a over a stable serialisation: the same on every run and build.
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    terms.terms.hash(&mut h);
    filters.hash(&mut h);
    ms.hash(&mut h);
    h.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The index payload of a finding (see `INDEX_LUA`), and its fingerprint.
pub(crate) fn payload(finding: &Finding) -> (String, u64) {
    let terms = DocTerms::of(finding);
    let filters = filter_names(finding);
    let ms = finding.created_at.timestamp_millis();
    let fp = fingerprint(&terms, &filters, ms);
    let mut out = String::with_capacity(64 + terms.terms.len() * 12);
    out.push_str(&format!(
        "{ms}\u{1e}{}\u{1e}{}\u{1e}{fp:x}\u{1e}",
        terms.length,
        terms.norm()
    ));
    out.push_str(&filters.join("\u{1f}"));
    out.push('\u{1e}');
    let mut first = true;
    for (t, w) in &terms.terms {
        if !first {
            out.push('\u{1f}');
        }
        first = false;
        out.push_str(t);
        out.push('\u{1f}');
        out.push_str(&w.min(&255).to_string());
    }
    (out, fp)
}

/// What the put script needs of one finding to index it.
#[derive(Debug)]
pub(crate) struct IndexEntry {
    terms: DocTerms,
    filters: Vec<String>,
    ms: i64,
    fp: u64,
}

impl IndexEntry {
    pub(crate) fn of(finding: &Finding) -> Self {
        let terms = DocTerms::of(finding);
        let filters = filter_names(finding);
        let ms = finding.created_at.timestamp_millis();
        let fp = fingerprint(&terms, &filters, ms);
        Self {
            terms,
            filters,
            ms,
            fp,
        }
    }

    /// The document's length (BM25).
    pub(crate) fn length(&self) -> u32 {
        self.terms.length
    }

    /// The fingerprint, as `nums` stores it.
    pub(crate) fn fingerprint(&self) -> String {
        format!("{:x}", self.fp)
    }
}

/// The index writes of a batch whose documents are numbered from `base`,
/// grouped in Rust so that the script makes one APPEND per distinct term
/// and filter: `(key suffix, bytes)` pairs, and the batch's `times` bytes.
pub(crate) fn batch_writes(
    entries: &[&IndexEntry],
    base: u32,
) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let mut times = Vec::with_capacity(entries.len() * 8);
    let mut groups: HashMap<String, Vec<u8>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let doc = base.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
        times.extend_from_slice(&e.ms.to_be_bytes());
        let norm = e.terms.norm();
        for (t, w) in &e.terms.terms {
            groups
                .entry(format!("t:{t}"))
                .or_default()
                .extend_from_slice(&swarmbus_core::search::posting(doc, *w, norm));
        }
        for f in &e.filters {
            groups
                .entry(format!("f:{f}"))
                .or_default()
                .extend_from_slice(&doc.to_be_bytes());
        }
    }
    let mut groups: Vec<(String, Vec<u8>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    (times, groups)
}

/// The canonical form of a HASH's fields, as `INDEX_STORED` builds it.
fn canonical_hash(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (k, v) in sorted {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(n) => n.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

/// The fields of a HASH as HGETALL returns them.
type HashFields = Vec<(Vec<u8>, Vec<u8>)>;

/// Findings per `INDEX_STORED` call (each call holds Redis about a
/// millisecond).
const INDEX_PER_SCRIPT: usize = 25;

impl RedisBus {
    /// The index's key prefix (`swarm:fx:`).
    pub(crate) fn index_prefix(&self) -> String {
        self.internal("fx:")
    }

    fn index_key(&self, name: &str) -> String {
        format!("{}{name}", self.index_prefix())
    }

    /// Numbers `k` documents for a batch: returns the first. A retried
    /// reservation leaves a gap of unused numbers, which costs nothing.
    pub(crate) async fn reserve_docs(&self, k: usize) -> Result<u32> {
        let mut cmd = redis::cmd("HINCRBY");
        cmd.arg(self.index_key("stats")).arg("n").arg(k);
        let n: i64 = self.query("put_findings", &cmd).await?;
        let k = i64::try_from(k).unwrap_or(i64::MAX);
        u32::try_from(n.saturating_sub(k))
            .map_err(|_| unexpected_reply("put_findings", "document number"))
    }

    /// `swarm:fx:nums` (for the archive script).
    pub(crate) fn index_nums_key(&self) -> String {
        self.index_key("nums")
    }

    /// `swarm:fx:archived` (for the archive script).
    pub(crate) fn index_archived_key(&self) -> String {
        self.index_key("archived")
    }

    /// Brings the index up to date for these ids from what is stored:
    /// indexes a finding the index lacks or holds stale, retires one whose
    /// key is gone or that is in no finding index. Returns how many changed.
    pub async fn index_ids(&self, ids: &[FindingId]) -> Result<u64> {
        let mut changed = 0;
        // SCAN may return a key twice: each id once per call.
        let mut seen = HashSet::new();
        let ids: Vec<FindingId> = ids.iter().filter(|id| seen.insert(*id)).cloned().collect();
        for chunk in ids.chunks(INDEX_PER_SCRIPT) {
            let keys: Vec<String> = chunk.iter().map(|id| self.finding_key(id)).collect();
            let values = self.mget("index_findings", &keys).await?;
            let mut raws: Vec<Option<RawValue>> = Vec::with_capacity(chunk.len());
            let mut pipe = redis::pipe();
            let mut nil = Vec::new();
            for (i, v) in values.into_iter().enumerate() {
                if v.is_none() {
                    nil.push(i);
                    pipe.cmd("HGETALL").arg(&keys[i]);
                }
                raws.push(v.map(RawValue::String));
            }
            if !nil.is_empty() {
                // A key of another type (a LIST under `finding:x`) answers
                // WRONGTYPE, which fails the whole pipeline: then each key is
                // read on its own, so one foreign key never hides the HASH
                // findings that share its chunk. Only WRONGTYPE means "not a
                // finding"; any other failure is the caller's error, never a
                // reason to retire what the index holds.
                let got: Vec<Option<HashFields>> = match self
                    .pipeline_raw("index_findings", &pipe)
                    .await
                {
                    Ok(all) => {
                        let all: Vec<HashFields> = all;
                        all.into_iter().map(Some).collect()
                    }
                    Err(e) if crate::errors::is_wrong_type(&e) => {
                        let mut one_by_one = Vec::with_capacity(nil.len());
                        for &i in &nil {
                            let mut cmd = redis::cmd("HGETALL");
                            cmd.arg(&keys[i]);
                            match self.query_raw::<HashFields>("index_findings", &cmd).await {
                                Ok(pairs) => one_by_one.push(Some(pairs)),
                                Err(e) if crate::errors::is_wrong_type(&e) => one_by_one.push(None),
                                Err(e) => return Err(self.fail(&e, "index_findings")),
                            }
                        }
                        one_by_one
                    }
                    Err(e) => return Err(self.fail(&e, "index_findings")),
                };
                for (i, pairs) in nil.into_iter().zip(got) {
                    if let Some(pairs) = pairs.filter(|p| !p.is_empty()) {
                        raws[i] = Some(RawValue::Hash(pairs));
                    }
                }
            }
            let mut times = redis::pipe();
            for id in chunk {
                times
                    .cmd("ZSCORE")
                    .arg(&self.names().findings_active)
                    .arg(id.as_str());
                times
                    .cmd("ZSCORE")
                    .arg(&self.names().findings_archived)
                    .arg(id.as_str());
            }
            let scores: Vec<Option<f64>> = self.pipeline("index_findings", &times).await?;
            let mut args: Vec<Vec<u8>> = vec![self.index_prefix().into_bytes()];
            for (i, id) in chunk.iter().enumerate() {
                let at = scores
                    .get(2 * i)
                    .copied()
                    .flatten()
                    .or(scores.get(2 * i + 1).copied().flatten())
                    .and_then(|ms| chrono::DateTime::from_timestamp_millis(ms as i64));
                let (kind, want, finding) = match &raws[i] {
                    None => ("-", Vec::new(), None),
                    Some(raw) => {
                        let want = match raw {
                            RawValue::String(b) => b.clone(),
                            RawValue::Hash(p) => canonical_hash(p),
                            _ => Vec::new(),
                        };
                        let kind = if matches!(raw, RawValue::Hash(_)) {
                            "h"
                        } else {
                            "s"
                        };
                        let f =
                            Finding::from_stored(&keys[i], id, raw.clone(), at, self.limits()).ok();
                        if f.is_none() {
                            ("-", Vec::new(), None)
                        } else {
                            (kind, want, f)
                        }
                    }
                };
                let (payload, fp) = finding.as_ref().map(payload).unwrap_or_default();
                args.push(id.as_str().as_bytes().to_vec());
                args.push(kind.as_bytes().to_vec());
                args.push(want);
                args.push(payload.into_bytes());
                args.push(format!("{fp:x}").into_bytes());
            }
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(INDEX_STORED.get_hash())
                .arg(keys.len() + 2)
                .arg(&self.names().findings_active)
                .arg(&self.names().findings_archived)
                .arg(&keys);
            for a in &args {
                cmd.arg(a.as_slice());
            }
            let n: u64 = self.query("index_findings", &cmd).await?;
            changed += n;
        }
        Ok(changed)
    }

    /// Document number → finding id for these documents.
    async fn ids_of(&self, docs: &[u32]) -> Result<Vec<Option<FindingId>>> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.index_key("ids"));
        for d in docs {
            cmd.arg(*d);
        }
        let ids: Vec<Option<String>> = self.query("search_findings", &cmd).await?;
        Ok(ids
            .into_iter()
            .map(|s| s.and_then(|s| FindingId::parse(&s).ok()))
            .collect())
    }

    /// Every id of both finding indices.
    async fn stored_ids(&self) -> Result<Vec<(FindingId, bool)>> {
        let mut out = Vec::new();
        for (zset, archived) in [
            (&self.names().findings_active, false),
            (&self.names().findings_archived, true),
        ] {
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(zset).arg(0).arg(-1);
            let ids: Vec<String> = self.query("check_index", &cmd).await?;
            out.extend(
                ids.into_iter()
                    .filter_map(|s| FindingId::parse(&s).ok())
                    .map(|id| (id, archived)),
            );
        }
        Ok(out)
    }

    /// Compacts every posting and filter string.
    async fn compact_index(&self) -> Result<u64> {
        let mut dropped = 0;
        for (pattern, width) in [("t:*", 6), ("f:*", 4)] {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(self.index_key(pattern))
                    .arg("COUNT")
                    .arg(500);
                let (next, keys): (u64, Vec<String>) = self
                    .query_on_swarm_node("check_index", &scan)
                    .await
                    .map_err(|e| self.fail(&e, "check_index"))?;
                if !keys.is_empty() {
                    let live = self.index_key("live");
                    let stats = self.index_key("stats");
                    let mut all: Vec<&str> = vec![&live, &stats];
                    all.extend(keys.iter().map(String::as_str));
                    let widths: Vec<u32> = keys.iter().map(|_| width).collect();
                    let n: u64 = self.eval("check_index", &COMPACT, &all, &[&widths]).await?;
                    dropped += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.index_key("stats")).arg("dead").arg(0);
        let _: Value = self.query("check_index", &cmd).await?;
        Ok(dropped)
    }
}

#[async_trait]
impl FindingIndex for RedisBus {
    async fn search_findings(&self, query: &SearchQuery) -> Result<SearchPage> {
        query.page_size()?;
        self.sweep_due().await?;
        let terms = query.terms();
        let filters = query.filter_names();
        let stats = self.index_key("stats");
        let live = self.index_key("live");
        let archived = self.index_key("archived");
        let times = if query.needs_times() {
            self.index_key("times")
        } else {
            stats.clone()
        };
        let mut keys: Vec<String> = vec![stats, live, archived, times];
        keys.extend(terms.iter().map(|t| self.index_key(&format!("t:{t}"))));
        keys.extend(filters.iter().map(|f| self.index_key(&format!("f:{f}"))));
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let reply: Value = self
            .eval("search_findings", &SEARCH_FETCH, &key_refs, &[])
            .await?;
        let parts: Vec<Vec<u8>> = items(reply)
            .ok_or_else(|| unexpected_reply("search_findings", "not an array"))?
            .into_iter()
            .map(bytes)
            .collect();
        if parts.len() != 6 + terms.len() + filters.len() {
            return Err(unexpected_reply("search_findings", "reply length"));
        }
        let num = |b: &[u8]| -> u64 {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .map_or(0, |n| u64::try_from(n).unwrap_or(0))
        };
        let docs = u32::try_from(num(&parts[0])).unwrap_or(u32::MAX);
        let view = IndexView {
            live_docs: num(&parts[1]),
            total_len: num(&parts[2]),
            live: &parts[3],
            archived: &parts[4],
            times: &parts[5],
        };
        let postings: Vec<&[u8]> = parts[6..6 + terms.len()]
            .iter()
            .map(Vec::as_slice)
            .collect();
        let filter_lists: Vec<&[u8]> = parts[6 + terms.len()..].iter().map(Vec::as_slice).collect();
        if filter_lists.iter().any(|f| f.is_empty()) {
            return Ok(SearchPage {
                hits: Vec::new(),
                total: 0,
                next_cursor: None,
            });
        }
        let ranked = if query.text.is_some() {
            rank(&view, query, &postings, &filter_lists)?
        } else {
            list(&view, query, &filter_lists, docs)?
        };
        let docs: Vec<u32> = ranked.hits.iter().map(|(d, _)| *d).collect();
        let ids = self.ids_of(&docs).await?;
        Ok(SearchPage {
            hits: ranked
                .hits
                .into_iter()
                .zip(ids)
                .filter_map(|((_, score), id)| id.map(|id| SearchHit { id, score }))
                .collect(),
            total: ranked.total,
            next_cursor: ranked.next_cursor,
        })
    }

    async fn check_index(&self, repair: bool) -> Result<IndexReport> {
        let mut report = IndexReport::default();
        let stored = self.stored_ids().await?;
        report.findings = stored.len() as u64;
        let mut nums: HashMap<String, String> = {
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(self.index_key("nums"));
            self.query("check_index", &cmd).await?
        };
        report.indexed = nums.len() as u64;
        let archived_bits: Vec<u8> = {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.index_key("archived"));
            let v: Option<Vec<u8>> = self.query("check_index", &cmd).await?;
            v.unwrap_or_default()
        };
        let in_store: HashSet<&FindingId> = stored.iter().map(|(id, _)| id).collect();
        for chunk in stored.chunks(500) {
            let ids: Vec<FindingId> = chunk.iter().map(|(id, _)| id.clone()).collect();
            let found = self.get_findings_lenient(&ids).await?;
            for ((id, archived), f) in chunk.iter().zip(found) {
                let Some(f) = f else { continue };
                match nums.remove(id.as_str()) {
                    None => report.missing.push(id.clone()),
                    Some(entry) => {
                        let mut it = entry.split(' ');
                        let doc: u32 = it.next().and_then(|d| d.parse().ok()).unwrap_or(0);
                        let fp = it.nth(1).unwrap_or_default();
                        let (_, want) = payload(&f);
                        let bit = swarmbus_core::search::bit(&archived_bits, doc);
                        if fp != format!("{want:x}") || bit != *archived {
                            report.stale.push(id.clone());
                        }
                    }
                }
            }
        }
        report.orphaned = nums
            .into_keys()
            .filter_map(|s| FindingId::parse(&s).ok())
            .filter(|id| !in_store.contains(id))
            .collect();
        let dead: Option<u64> = {
            let mut cmd = redis::cmd("HGET");
            cmd.arg(self.index_key("stats")).arg("dead");
            self.query("check_index", &cmd).await?
        };
        report.dead_postings = dead.unwrap_or(0);
        report.missing.sort();
        report.stale.sort();
        report.orphaned.sort();
        if repair {
            let all: Vec<FindingId> = report
                .missing
                .iter()
                .chain(&report.stale)
                .chain(&report.orphaned)
                .cloned()
                .collect();
            // Stale: retire first so that the fresh document replaces it.
            self.index_ids(&all).await?;
            self.compact_index().await?;
            report.repaired = true;
        }
        Ok(report)
    }
}

impl RedisBus {
    /// Findings by id, `None` for those missing or unreadable.
    async fn get_findings_lenient(&self, ids: &[FindingId]) -> Result<Vec<Option<Finding>>> {
        match self.get_findings(ids).await {
            Ok(v) => Ok(v),
            Err(_) => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.push(self.get_finding(id).await.ok().flatten());
                }
                Ok(out)
            }
        }
    }
}

use swarmbus_core::bus::FindingStore;
