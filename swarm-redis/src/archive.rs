//! [`ArchiveDesk`]: questions under `query:archive:<uuid>` and answers under
//! `response:archive:<uuid>` (STRING JSON), a pending LIST of question ids
//! for librarians (`swarm:queries:pending`), and notifications on
//! `channel:queries` / `channel:responses`.

use std::time::Duration;

use async_trait::async_trait;
use swarmbus_core::bus::ArchiveDesk;
use swarmbus_core::codec::{decode, encode};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{Channel, Key, QueryId};
use swarmbus_core::{ArchiveQuery, ArchiveResponse};
use tokio::time::Instant;

use crate::bus::RedisBus;
use crate::scripts;

impl RedisBus {
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<Option<T>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        match self.query_raw::<Option<Vec<u8>>>(operation, &cmd).await {
            Ok(None) => Ok(None),
            Ok(Some(raw)) => {
                let raw = String::from_utf8(raw)
                    .map_err(|e| Error::decode(key, format!("not UTF-8: {e}")))?;
                decode(key, &raw).map(Some)
            }
            Err(e) => Err(self.fail_on_key(&e, operation, key, "string").await),
        }
    }

    /// Pops the oldest pending question id, if any.
    async fn pop_query(&self) -> Result<Option<String>> {
        let pending = &self.names().pending_queries;
        // With an operation id: a pop whose reply was lost is answered
        // again, not lost.
        self.eval_once(
            "next_query",
            &scripts::POP_QUERY,
            &[pending.as_str()],
            &[],
            Some((pending.as_str(), "list")),
        )
        .await
    }
}

#[async_trait]
impl ArchiveDesk for RedisBus {
    async fn ask(&self, query: &ArchiveQuery) -> Result<()> {
        let key = self.key(&Key::QueryArchive(query.id));
        let json = encode(&key, query)?;
        self.check_json_size(&key, &json)?;
        let channel = self.inner.keys.channel(Channel::Queries);
        let names = self.names();
        let id = query.id.to_string();
        let _: i64 = self
            .eval_once(
                "ask",
                &scripts::ASK,
                &[key.as_str(), names.pending_queries.as_str()],
                &[&json, &id, &channel],
                Some((key.as_str(), "string")),
            )
            .await?;
        Ok(())
    }

    async fn next_query(&self, wait: Duration) -> Result<Option<ArchiveQuery>> {
        let deadline = crate::bus::deadline_after(wait);
        let pending = self.names().pending_queries.clone();
        loop {
            while let Some(id) = self.pop_query().await? {
                let Ok(id) = QueryId::parse(&id) else {
                    tracing::warn!(entry = %id, "pending query entry is not a query id; dropped");
                    continue;
                };
                // Answered meanwhile (by another librarian): skip it.
                let mut answered = redis::cmd("EXISTS");
                answered.arg(self.key(&Key::ResponseArchive(id)));
                let answered: i64 = self.query("next_query", &answered).await?;
                if answered > 0 {
                    continue;
                }
                match self
                    .get_json::<ArchiveQuery>("next_query", &self.key(&Key::QueryArchive(id)))
                    .await?
                {
                    Some(q) => return Ok(Some(q)),
                    None => continue,
                }
            }
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(crate::bus::MAX_BLOCK);
            if left.is_zero() {
                return Ok(None);
            }
            // Wait for a head without taking it (head back to head).
            let mut cmd = redis::cmd("BLMOVE");
            cmd.arg(&pending)
                .arg(&pending)
                .arg("LEFT")
                .arg("LEFT")
                .arg(format!("{:.3}", left.as_secs_f64().max(0.001)));
            match self
                .blocking::<Option<Vec<u8>>>("next_query", &cmd, left)
                .await
            {
                // Nothing within this read: the loop checks the deadline.
                Ok(None) => continue,
                Ok(Some(_)) => continue,
                Err(e) if e.is_timeout() => return Ok(None),
                Err(e) => return Err(self.fail_on_key(&e, "next_query", &pending, "list").await),
            }
        }
    }

    async fn get_query(&self, id: QueryId) -> Result<Option<ArchiveQuery>> {
        self.get_json("get_query", &self.key(&Key::QueryArchive(id)))
            .await
    }

    async fn answer(&self, response: &ArchiveResponse) -> Result<()> {
        let key = self.key(&Key::ResponseArchive(response.id));
        let json = encode(&key, response)?;
        self.check_json_size(&key, &json)?;
        let channel = self.inner.keys.channel(Channel::Responses);
        let _: i64 = self
            .eval_once(
                "answer",
                &scripts::ANSWER,
                &[key.as_str()],
                &[&json, &channel],
                Some((key.as_str(), "string")),
            )
            .await?;
        Ok(())
    }

    async fn get_response(&self, id: QueryId) -> Result<Option<ArchiveResponse>> {
        self.get_json("get_response", &self.key(&Key::ResponseArchive(id)))
            .await
    }
}
