//! [`Counters`] and [`Journal`]: `cost:<tier>` (INCRBYFLOAT), `context:active`,
//! named integer counters (`swarm:counter:<name>`) and append-only journals
//! (`swarm:journal:<name>`, LISTs of JSON records).
//!
//! Increments and appends are not idempotent: each is a script with an
//! operation id (`scripts::once`), so the bus's retries apply it once. The
//! ledger's append and its `cost:<tier>` increment are one script
//! ([`Journal::append_with_cost`]).

use async_trait::async_trait;
use redis::Value;
use swarmbus_core::bus::{Counters, Journal};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{CounterName, JournalName, Key, TierName};

use crate::bus::{RedisBus, int, items};
use crate::errors::unexpected_reply;
use crate::scripts;

impl RedisBus {
    fn counter_key(&self, name: &CounterName) -> String {
        self.internal(&format!("counter:{name}"))
    }

    fn journal_key(&self, name: &JournalName) -> String {
        self.internal(&format!("journal:{name}"))
    }

    /// Reads numbers stored as strings; absent ones are `None`. A key
    /// holding another Redis type (MGET reads it as nil) is
    /// `Error::WrongType`, never an absent 0.
    pub(crate) async fn read_numbers<T: std::str::FromStr>(
        &self,
        operation: &'static str,
        keys: &[String],
    ) -> Result<Vec<Option<T>>> {
        let values = self.mget(operation, keys).await?;
        let nil: Vec<String> = keys
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if !nil.is_empty() {
            let types = self.key_types(&nil).await?;
            if let Some((key, found)) = nil.iter().zip(types).find(|(_, t)| t != "none") {
                return Err(Error::WrongType {
                    key: key.clone(),
                    expected: "string",
                    found,
                });
            }
        }
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
}

#[async_trait]
impl Counters for RedisBus {
    async fn add_cost(&self, tier: &TierName, usd: f64) -> Result<f64> {
        check_dollars(usd)?;
        let key = self.key(&Key::Cost(tier.clone()));
        let total: Value = self
            .eval_once(
                "add_cost",
                &scripts::ADD_COST,
                &[key.as_str()],
                &[&usd],
                Some((key.as_str(), "string")),
            )
            .await?;
        float(&total).ok_or_else(|| unexpected_reply("add_cost", "not a float"))
    }

    async fn costs(&self, tiers: &[TierName]) -> Result<Vec<f64>> {
        let keys: Vec<String> = tiers
            .iter()
            .map(|t| self.key(&Key::Cost(t.clone())))
            .collect();
        keys.iter()
            .zip(self.read_numbers::<f64>("costs", &keys).await?)
            .map(|(key, v)| match v {
                None => Ok(0.0),
                Some(usd) if usd.is_finite() => Ok(usd),
                Some(usd) => Err(Error::decode(
                    key,
                    format!("not a finite number of dollars: {usd}"),
                )),
            })
            .collect()
    }

    async fn set_context_tokens(&self, tokens: u64) -> Result<()> {
        let key = self.key(&Key::ContextActive);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(tokens);
        let _: Value = self.query("set_context_tokens", &cmd).await?;
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
        let v: Value = self
            .eval_once(
                "counter_add",
                &scripts::COUNTER_ADD,
                &[key.as_str()],
                &[&delta],
                Some((key.as_str(), "string")),
            )
            .await?;
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
        let reply: Value = self
            .eval_once(
                "counter_try_add",
                &scripts::COUNTER_TRY_ADD,
                &[key.as_str()],
                &[&delta, &limit],
                Some((key.as_str(), "string")),
            )
            .await?;
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
        let _: i64 = self
            .eval_once(
                "append",
                &scripts::APPEND,
                &[key.as_str()],
                &[&records],
                Some((key.as_str(), "list")),
            )
            .await?;
        Ok(())
    }

    async fn append_with_cost(
        &self,
        journal: &JournalName,
        records: &[String],
        tier: &TierName,
        usd: f64,
    ) -> Result<f64> {
        check_dollars(usd)?;
        let key = self.journal_key(journal);
        for r in records {
            self.check_size(&key, r)?;
        }
        let cost_key = self.key(&Key::Cost(tier.clone()));
        let total: Value = match self
            .eval_once(
                "append_with_cost",
                &scripts::APPEND_WITH_COST,
                &[key.as_str(), cost_key.as_str()],
                &[&usd, &records],
                None,
            )
            .await
        {
            Ok(v) => v,
            Err(Error::Backend { message, .. }) if message.contains("WRONGTYPE") => {
                // Which of the two keys: the script names it.
                let (key, expected) = if message.contains(cost_key.as_str()) {
                    (cost_key, "string")
                } else {
                    (key, "list")
                };
                let found = self
                    .key_type(&key)
                    .await
                    .unwrap_or_else(|_| "unknown".into());
                return Err(Error::WrongType {
                    key,
                    expected,
                    found,
                });
            }
            Err(e) => return Err(e),
        };
        float(&total).ok_or_else(|| unexpected_reply("append_with_cost", "not a float"))
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
        let raw = match self.query_raw::<Vec<Vec<u8>>>("read", &cmd).await {
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
        match self.query_raw::<u64>("journal_len", &cmd).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail_on_key(&e, "journal_len", &key, "list").await),
        }
    }
}

/// Refuses a cost that is not a finite number of dollars.
fn check_dollars(usd: f64) -> Result<()> {
    if usd.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            field: "cost",
            reason: format!("must be a finite number of dollars, not {usd}"),
        })
    }
}

/// Reads a float reply (INCRBYFLOAT answers text).
fn float(v: &Value) -> Option<f64> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        Value::SimpleString(s) => s.trim().parse().ok(),
        Value::Double(d) => Some(*d),
        Value::Int(i) => Some(*i as f64),
        _ => None,
    }
}
