//! [`WorkerRegistry`]: `worker:status:<id>` is the brief's STRING heartbeat
//! timestamp with a TTL ("exists" means "alive"); a registry ZSET scored by
//! expiry (server clock) lets the bus list the live workers in two round
//! trips without KEYS or SCAN: prune-and-list, then one MGET.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use swarmbus_core::bus::WorkerRegistry;
use swarmbus_core::codec::{decode, encode};
use swarmbus_core::error::Result;
use swarmbus_core::keys::{Key, WorkerId};
use swarmbus_core::worker::{format_heartbeat, parse_heartbeat};
use swarmbus_core::{BusLimits, Heartbeat, Progress};

use crate::bus::RedisBus;
use crate::scripts;

impl RedisBus {
    async fn beat(
        &self,
        worker: &WorkerId,
        ttl: Duration,
        progress: Option<&Progress>,
        keep_ttl: bool,
    ) -> Result<()> {
        // Zero is refused; `Duration::MAX` ("forever") is cut to the
        // longest TTL stored, a sub-millisecond one rounded up to 1 ms.
        let ttl = BusLimits::heartbeat_ttl_checked(ttl)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let status = self.key(&Key::WorkerStatus(worker.clone()));
        let progress_key = self.progress_key(worker);
        let progress_json = match progress {
            Some(p) => {
                let json = encode(&progress_key, p)?;
                self.check_json_size(&progress_key, &json)?;
                json
            }
            None => String::new(),
        };
        let value = format_heartbeat(Utc::now());
        let names = self.names();
        let keys = [
            status.as_str(),
            names.workers.as_str(),
            progress_key.as_str(),
            names.seen.as_str(),
        ];
        let _: i64 = self
            .eval(
                "heartbeat",
                &scripts::HEARTBEAT,
                &keys,
                &[
                    &value,
                    &ttl_ms,
                    &worker.as_str(),
                    &progress_json,
                    &if keep_ttl { "keep" } else { "" },
                ],
            )
            .await?;
        Ok(())
    }

    /// The ids in the registry whose heartbeat has not expired (pruning the
    /// others): one round trip.
    async fn live_ids(&self) -> Result<Vec<String>> {
        let keys = [self.names().workers.as_str()];
        self.eval("alive_workers", &scripts::LIVE_WORKERS, &keys, &[&"ids"])
            .await
    }
}

#[async_trait]
impl WorkerRegistry for RedisBus {
    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<()> {
        self.beat(worker, ttl, None, false).await
    }

    async fn progress(&self, worker: &WorkerId, progress: &Progress) -> Result<()> {
        // A live worker keeps the expiry of its own last heartbeat; the
        // bus default applies only to one with none (as MemoryBus does).
        let ttl = self.limits().heartbeat_ttl;
        self.beat(worker, ttl, Some(progress), true).await
    }

    async fn is_alive(&self, worker: &WorkerId) -> Result<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(&Key::WorkerStatus(worker.clone())));
        let n: i64 = self.query("is_alive", &cmd).await?;
        Ok(n > 0)
    }

    async fn alive_workers(&self) -> Result<Vec<Heartbeat>> {
        let ids = self.live_ids().await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let workers: Vec<WorkerId> = ids.iter().filter_map(|id| WorkerId::new(id).ok()).collect();
        // Status and progress of every worker in one MGET.
        let mut keys = Vec::with_capacity(workers.len() * 2);
        for w in &workers {
            keys.push(self.key(&Key::WorkerStatus(w.clone())));
            keys.push(self.progress_key(w));
        }
        let values = self.mget("alive_workers", &keys).await?;
        let mut out = Vec::with_capacity(workers.len());
        for ((worker, pair), key) in workers
            .into_iter()
            .zip(values.chunks(2))
            .zip(keys.chunks(2))
        {
            let [status, progress] = pair else { continue };
            // Expired or removed since the registry was read: not alive.
            let Some(status) = status else { continue };
            let status = String::from_utf8_lossy(status);
            let at = match parse_heartbeat(&key[0], &status) {
                Ok(at) => at,
                Err(e) => {
                    // The key exists, so the worker counts as alive for the
                    // brief's tools; without a readable time we cannot say
                    // when it beat, so it is left out here, loudly.
                    tracing::warn!(error = %e, "unreadable heartbeat value");
                    continue;
                }
            };
            let progress = progress.as_ref().and_then(|raw| {
                let raw = String::from_utf8_lossy(raw);
                decode::<Progress>(&key[1], &raw)
                    .map_err(|e| tracing::warn!(error = %e, "unreadable progress value"))
                    .ok()
            });
            out.push(Heartbeat::new(worker, at, progress));
        }
        out.sort_by(|a, b| a.worker.cmp(&b.worker));
        Ok(out)
    }

    async fn count_alive_workers(&self) -> Result<u64> {
        let keys = [self.names().workers.as_str()];
        self.eval(
            "count_alive_workers",
            &scripts::LIVE_WORKERS,
            &keys,
            &[&"count"],
        )
        .await
    }

    async fn deregister(&self, worker: &WorkerId) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.key(&Key::WorkerStatus(worker.clone())))
            .arg(self.progress_key(worker))
            .ignore();
        pipe.cmd("ZREM")
            .arg(&self.names().workers)
            .arg(worker.as_str())
            .ignore();
        let _: () = self.pipeline("deregister", &pipe).await?;
        Ok(())
    }
}
