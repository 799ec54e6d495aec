//! [`Counters`] and [`Journal`]: `cost:<tier>` (INCRBYFLOAT), `context:active`,
//! named integer counters (`swarm:counter:<name>`) and append-only journals
//! (`swarm:journal:<name>`, LISTs of JSON records).
//!
//! Increments and appends are not idempotent, so they are sent again only
//! when the connection was refused (the request surely never arrived).

use async_trait::async_trait;
use redis::Value;
use swarmbus_core::bus::{Counters, Journal};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{CounterName, JournalName, Key, TierName};

use crate::bus::{RedisBus, Replay, int, items};
use crate::errors::unexpected_reply;
use crate::scripts;

impl RedisBus {
    fn counter_key(&self, name: &CounterName) -> String {
        self.internal(&format!("counter:{name}"))
    }

    fn journal_key(&self, name: &JournalName) -> String {
        self.internal(&format!("journal:{name}"))
    }

    /// Reads numbers stored as strings; absent ones are `None`.
    async fn read_numbers<T: std::str::FromStr>(
        &self,
        operation: &'static str,
        keys: &[String],
    ) -> Result<Vec<Option<T>>> {
        let values = self.mget(operation, keys).await?;
        keys.iter()
            .zip(values)
            .map(|(key, v)| match v {
                None => Ok(None),
                Some(raw) => {
                    let raw = String::from_utf8_lossy(&raw);
                    raw.trim()
                        .parse::<T>()
                        .map(Some)
                        .map_err(|_| Error::decode(key, format!("not a number: {raw:?}")))
                }
            })
            .collect()
    }

    async fn write_number(
        &self,
        operation: &'static str,
        key: &str,
        cmd: &redis::Cmd,
    ) -> Result<Value> {
        match self
            .query_raw::<Value>(operation, Replay::Unsafe, cmd)
            .await
        {
            Ok(v) => Ok(v),
            Err(e) => Err(self.fail_on_key(&e, operation, key, "string").await),
        }
    }
}

#[async_trait]
impl Counters for RedisBus {
    async fn add_cost(&self, tier: &TierName, usd: f64) -> Result<f64> {
        if !usd.is_finite() {
            return Err(Error::InvalidInput {
                field: "cost",
                reason: format!("must be a finite number of dollars, not {usd}"),
            });
        }
        let key = self.key(&Key::Cost(tier.clone()));
        let mut cmd = redis::cmd("INCRBYFLOAT");
        cmd.arg(&key).arg(usd);
        let total = self.write_number("add_cost", &key, &cmd).await?;
        match &total {
            Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
            Value::Double(d) => Some(*d),
            _ => None,
        }
        .ok_or_else(|| unexpected_reply("add_cost", "not a float"))
    }

    async fn costs(&self, tiers: &[TierName]) -> Result<Vec<f64>> {
        let keys: Vec<String> = tiers
            .iter()
            .map(|t| self.key(&Key::Cost(t.clone())))
            .collect();
        Ok(self
            .read_numbers::<f64>("costs", &keys)
            .await?
            .into_iter()
            .map(|v| v.unwrap_or(0.0))
            .collect())
    }

    async fn set_context_tokens(&self, tokens: u64) -> Result<()> {
        let key = self.key(&Key::ContextActive);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(tokens);
        let _: Value = self.query("set_context_tokens", Replay::Safe, &cmd).await?;
        Ok(())
    }

    async fn context_tokens(&self) -> Result<Option<u64>> {
        let key = self.key(&Key::ContextActive);
        Ok(self
            .read_numbers::<u64>("context_tokens", std::slice::from_ref(&key))
            .await?
            .into_iter()
            .next()
            .flatten())
    }

    async fn counter_add(&self, name: &CounterName, delta: i64) -> Result<i64> {
        let key = self.counter_key(name);
        let mut cmd = redis::cmd("INCRBY");
        cmd.arg(&key).arg(delta);
        let v = self.write_number("counter_add", &key, &cmd).await?;
        int(&v).ok_or_else(|| unexpected_reply("counter_add", "not an integer"))
    }

    async fn counters(&self, names: &[CounterName]) -> Result<Vec<i64>> {
        let keys: Vec<String> = names.iter().map(|n| self.counter_key(n)).collect();
        Ok(self
            .read_numbers::<i64>("counters", &keys)
            .await?
            .into_iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    }

    async fn counter_try_add(
        &self,
        name: &CounterName,
        delta: i64,
        limit: i64,
    ) -> Result<Option<i64>> {
        let key = self.counter_key(name);
        let reply = self
            .eval_raw::<Value>(
                "counter_try_add",
                Replay::Unsafe,
                &scripts::COUNTER_TRY_ADD,
                &[key.as_str()],
                &[&delta, &limit],
            )
            .await;
        let reply = match reply {
            Ok(v) => v,
            Err(e) => {
                return Err(self
                    .fail_on_key(&e, "counter_try_add", &key, "string")
                    .await);
            }
        };
        let parts =
            items(reply).ok_or_else(|| unexpected_reply("counter_try_add", "not an array"))?;
        match parts.as_slice() {
            [done, value] => match (int(done), int(value)) {
                (Some(1), Some(v)) => Ok(Some(v)),
                (Some(0), Some(_)) => Ok(None),
                _ => Err(unexpected_reply("counter_try_add", "bad pair")),
            },
            _ => Err(unexpected_reply("counter_try_add", "not a pair")),
        }
    }
}

#[async_trait]
impl Journal for RedisBus {
    async fn append(&self, journal: &JournalName, records: &[String]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let key = self.journal_key(journal);
        for r in records {
            self.check_size(&key, r)?;
        }
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(&key).arg(records);
        match self.query_raw::<i64>("append", Replay::Unsafe, &cmd).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail_on_key(&e, "append", &key, "list").await),
        }
    }

    async fn read(&self, journal: &JournalName, from: u64, max: usize) -> Result<Vec<String>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let key = self.journal_key(journal);
        let start = i64::try_from(from).unwrap_or(i64::MAX);
        let stop = start
            .saturating_add(i64::try_from(max).unwrap_or(i64::MAX))
            .saturating_sub(1);
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(&key).arg(start).arg(stop);
        let raw = match self
            .query_raw::<Vec<Vec<u8>>>("read", Replay::Safe, &cmd)
            .await
        {
            Ok(v) => v,
            Err(e) => return Err(self.fail_on_key(&e, "read", &key, "list").await),
        };
        raw.into_iter()
            .map(|r| {
                String::from_utf8(r).map_err(|e| Error::decode(&key, format!("not UTF-8: {e}")))
            })
            .collect()
    }

    async fn journal_len(&self, journal: &JournalName) -> Result<u64> {
        let key = self.journal_key(journal);
        let mut cmd = redis::cmd("LLEN");
        cmd.arg(&key);
        match self
            .query_raw::<u64>("journal_len", Replay::Safe, &cmd)
            .await
        {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail_on_key(&e, "journal_len", &key, "list").await),
        }
    }
}
