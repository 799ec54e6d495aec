//! The Lua scripts: every multi-key change the bus makes is one script, so
//! it is atomic on a single node and on a Cluster (all keys of one swarm
//! share the namespace's hash slot, and every key is passed in KEYS).
//!
//! Every script that changes state in a way a repeat would change again
//! (counting, queueing, moving) is wrapped by [`once`]: it runs once per
//! operation id, so the bus may send it again after a lost reply.
//!
//! `redis::Script` computes each script's SHA1 once; calls go by EVALSHA and
//! fall back to loading the script when Redis answers NOSCRIPT (after a
//! restart or a failover).

use std::sync::LazyLock;

use redis::Script;

/// Wraps a script body so that it runs once per operation id.
///
/// The caller appends one key, the operation's marker (`swarm:op:<uuid>`,
/// in the namespace's hash slot), to KEYS and the marker's lifetime in ms to
/// ARGV; the body sees KEYS and ARGV without them. The first call runs the
/// body and stores its reply (MessagePack) under the marker with that TTL
/// (`SET NX`-like: only when absent); a call that finds the marker returns
/// the stored reply without running the body again. So a request sent
/// again after a lost reply applies once and answers as the first did.
pub(crate) fn once(body: &str) -> Script {
    Script::new(&format!(
        r#"
local op_key = table.remove(KEYS)
local op_ttl = table.remove(ARGV)
local seen = redis.call('GET', op_key)
if seen then return cmsgpack.unpack(seen)[1] end
local function run()
{body}
end
local reply = run()
redis.call('SET', op_key, cmsgpack.pack({{reply}}), 'PX', op_ttl)
return reply
"#
    ))
}

/// Stores findings that are new, atomically with their index entry, their
/// feed entry and their notification; a batch writes nothing when one of
/// them conflicts.
///
/// KEYS: active index (ZSET), feed (STREAM), tombstones (HASH, see
/// `lifecycle.rs`: a deleted id is refused), then one `finding:<uuid>` per
/// finding. ARGV: the findings channel, the search index's key prefix
/// (`swarm:fx:`, see `index.rs`: each new finding is indexed in this same
/// step), the first document number reserved for the call, the documents'
/// `times` bytes, then per finding: JSON, id, score (creation time in ms),
/// document length, fingerprint; then the number of grouped index writes
/// and that many (key suffix, bytes) pairs to APPEND. Documents of findings
/// that were already stored stay dead (their postings are garbage for the
/// next repair to compact).
///
/// Reply: `{"ok", "1101…"}` (one character per finding: 1 new, 0 already
/// stored with the same bytes), or `{"differs", i, stored}`, or `{"wrongtype", i, type}`, or
/// `{"deleted", i}`, in which case nothing was written.
pub(crate) static PUT_FINDINGS: LazyLock<Script> = LazyLock::new(|| {
    once(&format!(
        "local IDX = ARGV[2]\n{}\n{}",
        crate::index::INDEX_LUA,
        r#"
local n = #KEYS - 3
local status, mset, zadd = {}, {}, {}
local m = 0
-- Deleted ids stay deleted (one EXISTS when nothing was ever deleted).
if redis.call('EXISTS', KEYS[3]) == 1 then
  local ids = {}
  for i = 1, n do ids[i] = ARGV[(i - 1) * 5 + 6] end
  local dead = redis.call('HMGET', KEYS[3], unpack(ids))
  for i = 1, n do
    if dead[i] then return {'deleted', i} end
  end
end
-- Pass 1, nothing written yet. The usual case, none of the keys exists,
-- costs one EXISTS; otherwise each stored value is compared and each
-- missing one checked for another type.
if redis.call('EXISTS', unpack(KEYS, 4)) == 0 then
  for i = 1, n do
    local base = (i - 1) * 5 + 5
    status[i] = '1'
    mset[m + 1] = KEYS[i + 3]
    mset[m + 2] = ARGV[base]
    zadd[m + 1] = ARGV[base + 2]
    zadd[m + 2] = ARGV[base + 1]
    m = m + 2
  end
else
  local cur = redis.call('MGET', unpack(KEYS, 4))
  for i = 1, n do
    local base = (i - 1) * 5 + 5
    if cur[i] then
      if cur[i] ~= ARGV[base] then return {'differs', i, cur[i]} end
      status[i] = '0'
    else
      local t = redis.call('TYPE', KEYS[i + 3])['ok']
      if t ~= 'none' then return {'wrongtype', i, t} end
      status[i] = '1'
      mset[m + 1] = KEYS[i + 3]
      mset[m + 2] = ARGV[base]
      zadd[m + 1] = ARGV[base + 2]
      zadd[m + 2] = ARGV[base + 1]
      m = m + 2
    end
  end
end
-- Pass 2: write the new ones.
if m > 0 then
  redis.call('MSET', unpack(mset))
  redis.call('ZADD', KEYS[1], unpack(zadd))
  local feed, channel = KEYS[2], ARGV[1]
  -- The search index: documents numbered from ARGV[3] (reserved by the
  -- caller), one per finding of the call; only new ones become live.
  local first = tonumber(ARGV[3])
  local hids, hnums, ids, live, total = {}, {}, {}, 0, 0
  for i = 1, n do
    if status[i] == '1' then ids[#ids + 1] = ARGV[(i - 1) * 5 + 6] end
  end
  local old = redis.call('HMGET', IDX .. 'nums', unpack(ids))
  for i = 1, #ids do
    if old[i] then retire(ids[i]) end
  end
  for i = 1, n do
    if status[i] == '1' then
      local base = (i - 1) * 5 + 5
      local doc = first + i - 1
      hids[#hids + 1] = doc
      hids[#hids + 1] = ARGV[base + 1]
      hnums[#hnums + 1] = ARGV[base + 1]
      hnums[#hnums + 1] = doc .. ' ' .. ARGV[base + 3] .. ' ' .. ARGV[base + 4]
      redis.call('SETBIT', IDX .. 'live', doc, 1)
      live = live + 1
      total = total + tonumber(ARGV[base + 3])
    end
  end
  redis.call('HSET', IDX .. 'ids', unpack(hids))
  redis.call('HSET', IDX .. 'nums', unpack(hnums))
  redis.call('SETRANGE', IDX .. 'times', first * 8, ARGV[4])
  redis.call('HINCRBY', IDX .. 'stats', 'live', live)
  redis.call('HINCRBY', IDX .. 'stats', 'len', total)
  local g = n * 5 + 5
  for j = 1, tonumber(ARGV[g]) do
    redis.call('APPEND', IDX .. ARGV[g + 2 * j - 1], ARGV[g + 2 * j])
  end
  for i = 1, n do
    if status[i] == '1' then
      local base = (i - 1) * 5 + 5
      redis.call('XADD', feed, '*', 'finding', ARGV[base + 1])
      redis.call('PUBLISH', channel, KEYS[i + 3])
    end
  end
end
return {'ok', table.concat(status)}
"#
    ))
});

/// Moves findings from the active index to the archived one.
///
/// KEYS: active index, archived index, the search index's `nums` HASH and
/// `archived` bitmap (whose bit is set in the same step). ARGV: ids. Reply:
/// how many moved.
pub(crate) static ARCHIVE_FINDINGS: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
local moved = 0
for i = 1, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZADD', KEYS[2], score, ARGV[i])
    moved = moved + 1
  end
  local doc = redis.call('HGET', KEYS[3], ARGV[i])
  if doc then
    redis.call('SETBIT', KEYS[4], tonumber(string.match(doc, '^%d+')), 1)
  end
end
return moved
"#,
    )
});

/// A heartbeat: the brief's status key with its TTL, the registry entry
/// (score: expiry in server milliseconds) and, optionally, the progress.
///
/// KEYS: `worker:status:<id>`, registry (ZSET), progress key, seen (HASH).
/// ARGV: value, TTL in ms, worker id, progress JSON (empty: keep the
/// current one, with its TTL renewed), `keep` to keep the remaining TTL of
/// a live status key (progress: a worker keeps the expiry of its own last
/// heartbeat; the TTL given applies only when the key is gone).
pub(crate) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[5] == 'keep' then
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then
    ttl = left
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('HSET', KEYS[4], ARGV[3], 'b')
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ttl)
else
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return 1
"#,
    )
});

/// Prunes registry entries whose heartbeat expired (by the server's clock)
/// and returns the live ids (`ARGV[1] == "ids"`) or their number.
///
/// KEYS: registry (ZSET).
pub(crate) static LIVE_WORKERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
if ARGV[1] == 'ids' then
  return redis.call('ZRANGE', KEYS[1], 0, -1)
end
return redis.call('ZCARD', KEYS[1])
"#,
    )
});

/// Queues a task unless a task with its id is queued or in flight already
/// (so a retried push is stored once).
///
/// KEYS: `worker:tasks:<id>`, deliveries (HASH), workers with tasks (SET),
/// seen (HASH: a worker that never beat is marked with the time of its
/// first task). ARGV: task JSON, task id, worker id. Reply: 1 queued, 0
/// known already.
pub(crate) static PUSH_TASK: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
if redis.call('HSETNX', KEYS[2], ARGV[2], 0) == 0 then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
local t = redis.call('TIME')
redis.call('HSETNX', KEYS[4], ARGV[3], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return 1
"#,
    )
});

/// Claims the oldest queued task: moves it to the worker's in-flight list
/// and counts the delivery. A value that is not a task is moved to the
/// rejected list and returned with count -1.
///
/// KEYS: queue, in-flight list, deliveries, workers with tasks, rejected.
/// ARGV: worker id. Reply: nil, or `{raw, deliveries}`.
pub(crate) static CLAIM_TASK: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
local raw = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not raw then return false end
local ok, task = pcall(cjson.decode, raw)
local id = ok and type(task) == 'table' and type(task['id']) == 'string' and task['id'] or nil
if not id then
  redis.call('LREM', KEYS[2], -1, raw)
  redis.call('RPUSH', KEYS[5], raw)
  return {raw, -1}
end
local n = redis.call('HINCRBY', KEYS[3], id, 1)
redis.call('SADD', KEYS[4], ARGV[1])
return {raw, n}
"#,
    )
});

/// Acknowledges a claim: removes the task from the in-flight list and
/// forgets its delivery count.
///
/// KEYS: in-flight list, deliveries. ARGV: raw task, task id. Reply: how
/// many entries were removed (0 when reclaimed meanwhile).
pub(crate) static ACK_TASK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed > 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return removed
"#,
    )
});

/// Stops a task: removes it from the in-flight list and keeps the report.
///
/// KEYS: in-flight list, deliveries, failed list. ARGV: raw task, task id,
/// failure JSON.
pub(crate) static FAIL_TASK: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed > 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
redis.call('RPUSH', KEYS[3], ARGV[3])
return removed
"#,
    )
});

/// Takes every task of one worker that is dead (checked here, atomically):
/// its heartbeat key is gone and it has beaten before, or it never beat and
/// its grace period since its first task has passed. In-flight first, then
/// queued. A task handed out
/// `max` times already goes to the failed list with a report, the others
/// to the receiving worker's queue.
///
/// KEYS: dead worker's status key, its queue, its in-flight list, the
/// receiver's queue, deliveries, failed list, workers with tasks, seen.
/// ARGV: dead worker id, max deliveries, dead worker id as JSON, report as
/// JSON, time as JSON, receiving worker id, grace in ms.
/// Reply: `{requeued ids, dead-lettered ids}` (`{}` when the worker lives).
pub(crate) static RECLAIM_WORKER: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return {{}, {}} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = redis.call('HGET', KEYS[8], ARGV[1])
if seen and seen ~= 'b' and now - (tonumber(seen) or 0) < tonumber(ARGV[7]) then
  return {{}, {}}
end
local max = tonumber(ARGV[2])
local requeued, dead = {}, {}
local function take(list)
  while true do
    local raw = redis.call('LPOP', list)
    if not raw then return end
    local ok, task = pcall(cjson.decode, raw)
    local id = ok and type(task) == 'table' and type(task['id']) == 'string' and task['id'] or nil
    local n = 0
    if id then n = tonumber(redis.call('HGET', KEYS[5], id) or '0') or 0 end
    if id and n >= max then
      redis.call('HDEL', KEYS[5], id)
      redis.call('RPUSH', KEYS[6], '{"task":' .. raw .. ',"worker":' .. ARGV[3] ..
        ',"report":' .. ARGV[4] .. ',"deliveries":' .. n ..
        ',"dead_lettered":true,"at":' .. ARGV[5] .. '}')
      table.insert(dead, id)
    else
      redis.call('RPUSH', KEYS[4], raw)
      table.insert(requeued, id or '')
    end
  end
end
take(KEYS[3])
take(KEYS[2])
redis.call('SREM', KEYS[7], ARGV[1])
if #requeued > 0 then
  redis.call('SADD', KEYS[7], ARGV[6])
  redis.call('HSETNX', KEYS[8], ARGV[6], now)
end
return {requeued, dead}
"#,
    )
});

/// Lua shared by the quota scripts: named access to a shard's ledger
/// fields and the one priority rule of shard states (the same rule as
/// `swarmbus_core::quota::shard_status`; the conformance suite pins both).
const QUOTA_LUA: &str = r#"
local function ledger(h, ...)
  local names = {...}
  local values = redis.call('HMGET', h, unpack(names))
  local out = {}
  for i, name in ipairs(names) do out[name] = values[i] end
  return out
end
local function num(v)
  return tonumber(v or '0') or 0
end
-- disabled > exhausted > cooling > ok (tested) > untested, by the marks in
-- force at `now` (µs).
local function shard_status(h, now)
  local m = ledger(h, 'disabled', 'exhausted_until', 'cooling_until', 'tested')
  if m.disabled == '1' then return 'disabled' end
  if num(m.exhausted_until) > now then return 'exhausted' end
  if num(m.cooling_until) > now then return 'cooling' end
  if m.tested == '1' then return 'ok' end
  return 'untested'
end
"#;

/// A quota script: [`QUOTA_LUA`], then `body`, run once per operation id
/// when `once_per_op`.
fn quota_script(body: &str, once_per_op: bool) -> Script {
    let code = format!("{QUOTA_LUA}\n{body}");
    if once_per_op {
        once(&code)
    } else {
        Script::new(&code)
    }
}

/// The quota ledger's check-and-count (see `quota.rs` for the rules).
///
/// Times are compared as integer microseconds (exact in Lua's doubles) and
/// kept as RFC 3339 text beside them, so that the deadline a caller set is
/// the deadline it reads back, to the nanosecond.
///
/// KEYS: ledger (HASH), `librarian:shard<N>:status`, `librarian:shard<N>:quota`.
/// ARGV: now µs, Pacific day, minute, next minute (text), next Pacific
/// midnight µs, next Pacific midnight (text), per-day limit (-1: none),
/// per-minute limit (-1: none).
/// Reply: `{"granted", remaining (-1: unknown)}` or `{denial, detail}` with
/// denial `disabled` (detail: reason), `exhausted` or `cooling` (detail:
/// the time as text).
pub(crate) static QUOTA_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    quota_script(
        r#"
local h = KEYS[1]
local now = tonumber(ARGV[1])
local f = ledger(h, 'reason', 'exhausted_until', 'exhausted_at', 'cooling_until', 'cooling_at',
  'day', 'used', 'minute', 'minute_used')
local status = shard_status(h, now)
redis.call('SET', KEYS[2], status)
if status == 'disabled' then
  return {'disabled', f.reason or ''}
end
if status == 'exhausted' then
  redis.call('SET', KEYS[3], 0)
  return {'exhausted', f.exhausted_at or ''}
end
if status == 'cooling' then
  return {'cooling', f.cooling_at or ''}
end
-- Marks that ran out are forgotten.
if num(f.exhausted_until) > 0 then
  redis.call('HDEL', h, 'exhausted_until', 'exhausted_at', 'exhausted_by_count')
end
if num(f.cooling_until) > 0 then redis.call('HDEL', h, 'cooling_until', 'cooling_at') end
local used = 0
if f.day == ARGV[2] then used = num(f.used) end
local mused = 0
if f.minute == ARGV[3] then mused = num(f.minute_used) end
local per_day = tonumber(ARGV[7])
local per_min = tonumber(ARGV[8])
if per_day >= 0 and used >= per_day then
  redis.call('HSET', h, 'day', ARGV[2], 'used', used, 'exhausted_until', ARGV[5],
    'exhausted_at', ARGV[6], 'exhausted_by_count', '1')
  redis.call('SET', KEYS[2], shard_status(h, now))
  redis.call('SET', KEYS[3], 0)
  return {'exhausted', ARGV[6]}
end
if per_min >= 0 and mused >= per_min then
  return {'cooling', ARGV[4]}
end
used = used + 1
mused = mused + 1
redis.call('HSET', h, 'day', ARGV[2], 'used', used, 'minute', ARGV[3], 'minute_used', mused)
local remaining = -1
if per_day >= 0 then
  remaining = per_day - used
  redis.call('SET', KEYS[3], remaining)
  if remaining <= 0 then
    redis.call('HSET', h, 'exhausted_until', ARGV[5], 'exhausted_at', ARGV[6],
      'exhausted_by_count', '1')
  end
end
redis.call('SET', KEYS[2], shard_status(h, now))
return {'granted', remaining}
"#,
        true,
    )
});

/// Gives back a granted request of the same Pacific day (and minute); an
/// exhaustion that came from counting is lifted when the count drops under
/// the limit again.
///
/// KEYS: as [`QUOTA_ACQUIRE`]. ARGV: now µs, Pacific day, minute, per-day
/// limit (-1: none). Reply: 1 given back, 0 nothing to give back.
pub(crate) static QUOTA_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    quota_script(
        r#"
local h = KEYS[1]
local now = tonumber(ARGV[1])
local f = ledger(h, 'day', 'used', 'minute', 'minute_used', 'exhausted_by_count')
if f.day ~= ARGV[2] then return 0 end
local used = num(f.used)
if used <= 0 then return 0 end
used = used - 1
redis.call('HSET', h, 'used', used)
if f.minute == ARGV[3] then
  local m = num(f.minute_used)
  if m > 0 then redis.call('HSET', h, 'minute_used', m - 1) end
end
local per_day = tonumber(ARGV[4])
if per_day >= 0 and f.exhausted_by_count == '1' and used < per_day then
  redis.call('HDEL', h, 'exhausted_until', 'exhausted_at', 'exhausted_by_count')
  redis.call('SET', KEYS[2], shard_status(h, now))
end
if per_day >= 0 then
  if num(redis.call('HGET', h, 'exhausted_until')) > now then
    redis.call('SET', KEYS[3], 0)
  else
    redis.call('SET', KEYS[3], per_day - used)
  end
end
return 1
"#,
        true,
    )
});

/// The ledger's marks: `cool`, `exhaust`, `disable`, `enable`, `ok`.
/// Cooling and exhaustion only ever move later (the latest deadline wins),
/// so every mark is idempotent.
///
/// KEYS: as [`QUOTA_ACQUIRE`]. ARGV: action, now µs, then for `cool` and
/// `exhaust` the end in µs and as text, for `disable` the reason, for `ok`
/// the Pacific day and the per-day limit (-1: none). Reply: the status.
pub(crate) static QUOTA_MARK: LazyLock<Script> = LazyLock::new(|| {
    quota_script(
        r#"
local h = KEYS[1]
local action = ARGV[1]
local now = tonumber(ARGV[2])
local function later(field, at_field)
  if tonumber(ARGV[3]) > num(redis.call('HGET', h, field)) then
    redis.call('HSET', h, field, ARGV[3], at_field, ARGV[4])
  end
end
if action == 'cool' then
  later('cooling_until', 'cooling_at')
elseif action == 'exhaust' then
  later('exhausted_until', 'exhausted_at')
  redis.call('HDEL', h, 'exhausted_by_count')
elseif action == 'disable' then
  redis.call('HSET', h, 'disabled', '1', 'reason', ARGV[3])
elseif action == 'enable' then
  redis.call('HDEL', h, 'disabled', 'reason', 'cooling_until', 'cooling_at', 'exhausted_until',
    'exhausted_at', 'exhausted_by_count', 'tested')
elseif action == 'ok' then
  redis.call('HSET', h, 'tested', '1')
else
  return redis.error_reply('ERR unknown quota action')
end
local s = shard_status(h, now)
redis.call('SET', KEYS[2], s)
if num(redis.call('HGET', h, 'exhausted_until')) > now then
  redis.call('SET', KEYS[3], 0)
elseif action == 'ok' and tonumber(ARGV[4]) >= 0 then
  local f = ledger(h, 'day', 'used')
  local used = 0
  if f.day == ARGV[3] then used = num(f.used) end
  redis.call('SET', KEYS[3], math.max(tonumber(ARGV[4]) - used, 0))
end
return s
"#,
        false,
    )
});

/// Adds to a counter only while it stays at or below a limit.
///
/// KEYS: counter. ARGV: delta, limit. Reply: `{1, new}` or `{0, current}`.
pub(crate) static COUNTER_TRY_ADD: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
local raw = redis.call('GET', KEYS[1])
local cur = 0
if raw then
  cur = tonumber(raw)
  if not cur then return redis.error_reply('ERR value is not an integer') end
end
local d = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if cur < limit and cur + d <= limit then
  return {1, redis.call('INCRBY', KEYS[1], ARGV[1])}
end
return {0, cur}
"#,
    )
});

/// Stores a question once, queues it and notifies.
///
/// KEYS: `query:archive:<uuid>`, pending queries (LIST). ARGV: JSON, id,
/// queries channel. Reply: 1 new, 0 stored already.
pub(crate) static ASK: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], KEYS[1])
return 1
"#,
    )
});

/// Stores an answer and notifies.
///
/// KEYS: `response:archive:<uuid>`. ARGV: JSON, responses channel.
pub(crate) static ANSWER: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], KEYS[1])
return 1
"#,
    )
});

/// Adds to `cost:<tier>` (INCRBYFLOAT). KEYS: cost key. ARGV: dollars.
/// Reply: the new total (text).
pub(crate) static ADD_COST: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
return redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
"#,
    )
});

/// Adds to a named counter (INCRBY). KEYS: counter. ARGV: delta. Reply:
/// the new value.
pub(crate) static COUNTER_ADD: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
return redis.call('INCRBY', KEYS[1], ARGV[1])
"#,
    )
});

/// Appends records to a journal and, when ARGV[1] is not `0`, adds ARGV[1]
/// dollars to a cost key, both or neither: the types and the stored total
/// are checked before anything is written.
///
/// KEYS: journal (LIST), cost key (STRING). ARGV: dollars, records….
/// Reply: the cost key's total (text; `0` when absent).
pub(crate) static APPEND_WITH_COST: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
local jt = redis.call('TYPE', KEYS[1])['ok']
if jt ~= 'none' and jt ~= 'list' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. jt)
end
local ct = redis.call('TYPE', KEYS[2])['ok']
if ct ~= 'none' and ct ~= 'string' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' holds a ' .. ct)
end
local cur = redis.call('GET', KEYS[2])
if cur and not tonumber(cur) then
  return redis.error_reply('ERR ' .. KEYS[2] .. ' is not a number')
end
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
if tonumber(ARGV[1]) ~= 0 then
  return redis.call('INCRBYFLOAT', KEYS[2], ARGV[1])
end
return cur or '0'
"#,
    )
});

/// Appends records to a journal. KEYS: journal (LIST). ARGV: records.
/// Reply: the new length.
pub(crate) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
local n = 0
for i = 1, #ARGV do
  n = redis.call('RPUSH', KEYS[1], ARGV[i])
end
return n
"#,
    )
});

/// Takes the oldest pending question id. KEYS: pending queries (LIST).
/// Reply: the id, or nil.
pub(crate) static POP_QUERY: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
return redis.call('LPOP', KEYS[1])
"#,
    )
});

/// Publishes a message. ARGV: channel, message. Reply: receivers.
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    once(
        r#"
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"#,
    )
});

/// Every script, to load them all at connect time.
pub(crate) fn all() -> [&'static Script; 29] {
    let [search_fetch, index_stored, compact] = crate::index::scripts();
    let [update, delete, restore, expire] = crate::lifecycle::scripts();
    [
        update,
        delete,
        restore,
        expire,
        search_fetch,
        index_stored,
        compact,
        &PUT_FINDINGS,
        &crate::adopt::SYNC_KEYS,
        &ARCHIVE_FINDINGS,
        &HEARTBEAT,
        &LIVE_WORKERS,
        &PUSH_TASK,
        &CLAIM_TASK,
        &ACK_TASK,
        &FAIL_TASK,
        &RECLAIM_WORKER,
        &QUOTA_ACQUIRE,
        &QUOTA_RELEASE,
        &QUOTA_MARK,
        &COUNTER_TRY_ADD,
        &ASK,
        &ANSWER,
        &ADD_COST,
        &COUNTER_ADD,
        &APPEND,
        &APPEND_WITH_COST,
        &POP_QUERY,
        &PUBLISH,
    ]
}
