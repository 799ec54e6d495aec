//! [`HaltSwitch`]: the brief's `halt:reason` STRING (JSON of a
//! `HaltReport`, or plain text written by the brief's agents: a halt too), set only if absent so the first reason wins, and drafts in
//! one HASH (`swarm:drafts`), saved before any file is written.

use async_trait::async_trait;
use swarmbus_core::HaltReport;
use swarmbus_core::bus::HaltSwitch;
use swarmbus_core::codec::encode;
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{JournalName, Key};

use crate::bus::RedisBus;

impl RedisBus {
    /// JSON of a report, or the plain text the brief's agents write: both
    /// are a halt (`HaltReport::from_stored`).
    fn decode_halt(_key: &str, raw: Vec<u8>) -> Result<HaltReport> {
        Ok(HaltReport::from_stored(&raw))
    }

    /// Draft names follow the id rules, as on every bus.
    fn check_draft_name(name: &str) -> Result<()> {
        JournalName::new(name).map(|_| ())
    }
}

#[async_trait]
impl HaltSwitch for RedisBus {
    async fn halt(&self, report: &HaltReport) -> Result<bool> {
        let key = self.key(&Key::HaltReason);
        let json = encode(&key, report)?;
        self.check_json_size(&key, &json)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(&json).arg("NX");
        let set: Option<String> = match self.query_raw("halt", &cmd).await {
            Ok(v) => v,
            Err(e) => return Err(self.fail_on_key(&e, "halt", &key, "string").await),
        };
        if set.is_some() {
            return Ok(true);
        }
        // Not set: halted before, by someone else, or by this very call
        // whose first reply was lost and which was retried.
        let mut get = redis::cmd("GET");
        get.arg(&key);
        let stored: Option<String> = self.query("halt", &get).await?;
        Ok(stored.as_deref() == Some(json.as_str()))
    }

    async fn halted(&self) -> Result<Option<HaltReport>> {
        let key = self.key(&Key::HaltReason);
        let mut cmd = redis::cmd("GET");
        cmd.arg(&key);
        match self.query_raw::<Option<Vec<u8>>>("halted", &cmd).await {
            Ok(None) => Ok(None),
            Ok(Some(raw)) => Self::decode_halt(&key, raw).map(Some),
            Err(e) => Err(self.fail_on_key(&e, "halted", &key, "string").await),
        }
    }

    async fn clear_halt(&self) -> Result<Option<HaltReport>> {
        let key = self.key(&Key::HaltReason);
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(&key);
        match self.query_raw::<Option<Vec<u8>>>("clear_halt", &cmd).await {
            Ok(None) => Ok(None),
            Ok(Some(raw)) => Self::decode_halt(&key, raw).map(Some),
            Err(e) => Err(self.fail_on_key(&e, "clear_halt", &key, "string").await),
        }
    }

    async fn save_draft(&self, name: &str, content: &str) -> Result<()> {
        Self::check_draft_name(name)?;
        let key = &self.names().drafts;
        self.check_size(key, content)?;
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key).arg(name).arg(content);
        let _: i64 = self.query("save_draft", &cmd).await?;
        Ok(())
    }

    async fn load_draft(&self, name: &str) -> Result<Option<String>> {
        Self::check_draft_name(name)?;
        let key = &self.names().drafts;
        let mut cmd = redis::cmd("HGET");
        cmd.arg(key).arg(name);
        let raw: Option<Vec<u8>> = self.query("load_draft", &cmd).await?;
        raw.map(|r| {
            String::from_utf8(r)
                .map_err(|e| Error::decode(format!("{key} {name}"), format!("not UTF-8: {e}")))
        })
        .transpose()
    }
}
