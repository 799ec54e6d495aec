//! [`TaskQueue`]: the LMOVE reliable-queue pattern over the brief's
//! `worker:tasks:<id>` LIST.
//!
//! - push: RPUSH the task JSON, once per task id (a delivery-count HASH
//!   entry doubles as "this task is known"), so a retried push is stored once;
//! - claim: LMOVE the oldest task to the worker's in-flight list and count
//!   the delivery, in one script; waiting is a BLMOVE of the queue onto
//!   itself (head back to head: no change) on a dedicated connection, which
//!   returns as soon as a task arrives;
//! - ack / fail: LREM from the in-flight list (fail also keeps the report);
//! - reclaim: per worker whose heartbeat key expired, one script moves its
//!   in-flight and queued tasks to the receiver, or to the failed list once
//!   they were handed out `max_deliveries` times.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use redis::Value;
use swarmbus_core::bus::TaskQueue;
use swarmbus_core::codec::{decode, encode};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{Key, TaskId, WorkerId};
use swarmbus_core::{ClaimedTask, ReclaimReport, Task, TaskFailure};
use tokio::time::Instant;

use crate::bus::{RedisBus, int, items, text};
use crate::errors::unexpected_reply;
use crate::scripts;

impl RedisBus {
    fn queue_key(&self, worker: &WorkerId) -> String {
        self.key(&Key::WorkerTasks(worker.clone()))
    }

    /// One claim attempt without waiting.
    async fn try_claim(&self, worker: &WorkerId) -> Result<Option<ClaimedTask>> {
        let queue = self.queue_key(worker);
        let inflight = self.inflight_key(worker);
        let names = self.names();
        let keys = [
            queue.as_str(),
            inflight.as_str(),
            names.deliveries.as_str(),
            names.task_workers.as_str(),
            names.rejected_tasks.as_str(),
        ];
        // With an operation id: a claim whose reply was lost is answered
        // again with the same task, not claimed twice.
        let reply: Value = self
            .eval_once(
                "claim_task",
                &scripts::CLAIM_TASK,
                &keys,
                &[&worker.as_str()],
                Some((queue.as_str(), "list")),
            )
            .await?;
        let Some(parts) = items(reply) else {
            return Ok(None);
        };
        let [raw, count] = parts.as_slice() else {
            return Err(unexpected_reply("claim_task", "not a pair"));
        };
        let raw = text(raw).ok_or_else(|| Error::decode(&queue, "queued value is not UTF-8"))?;
        let deliveries = int(count).ok_or_else(|| unexpected_reply("claim_task", "count"))?;
        if deliveries < 0 {
            return Err(Error::decode(
                &queue,
                "queued value is not a task (moved to the rejected list)",
            ));
        }
        let task: Task = decode(&queue, &raw)?;
        let deliveries = u32::try_from(deliveries).unwrap_or(u32::MAX);
        Ok(Some(ClaimedTask::new(
            task,
            worker.clone(),
            deliveries,
            raw,
        )))
    }
}

#[async_trait]
impl TaskQueue for RedisBus {
    async fn push_task(&self, worker: &WorkerId, task: &Task) -> Result<()> {
        let queue = self.queue_key(worker);
        let json = encode(&queue, task)?;
        self.check_json_size(&queue, &json)?;
        let names = self.names();
        let keys = [
            queue.as_str(),
            names.deliveries.as_str(),
            names.task_workers.as_str(),
            names.seen.as_str(),
        ];
        let id = task.id.to_string();
        let _: i64 = self
            .eval_once(
                "push_task",
                &scripts::PUSH_TASK,
                &keys,
                &[&json, &id, &worker.as_str()],
                Some((queue.as_str(), "list")),
            )
            .await?;
        Ok(())
    }

    async fn claim_task(&self, worker: &WorkerId, wait: Duration) -> Result<Option<ClaimedTask>> {
        let deadline = crate::bus::deadline_after(wait);
        let queue = self.queue_key(worker);
        loop {
            if let Some(claim) = self.try_claim(worker).await? {
                return Ok(Some(claim));
            }
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(crate::bus::MAX_BLOCK);
            if left.is_zero() {
                return Ok(None);
            }
            // Wait until the queue has a head, leaving it where it is.
            let mut cmd = redis::cmd("BLMOVE");
            cmd.arg(&queue)
                .arg(&queue)
                .arg("LEFT")
                .arg("LEFT")
                .arg(format!("{:.3}", left.as_secs_f64().max(0.001)));
            match self
                .blocking::<Option<Vec<u8>>>("claim_task", &cmd, left)
                .await
            {
                // Nothing within this read: the loop checks the deadline.
                Ok(None) => continue,
                Ok(Some(_)) => continue,
                Err(e) if e.is_timeout() => return Ok(None),
                Err(e) => return Err(self.fail_on_key(&e, "claim_task", &queue, "list").await),
            }
        }
    }

    async fn ack_task(&self, claim: &ClaimedTask) -> Result<()> {
        let inflight = self.inflight_key(&claim.worker);
        let names = self.names();
        let keys = [inflight.as_str(), names.deliveries.as_str()];
        let id = claim.task.id.to_string();
        let removed: i64 = self
            .eval(
                "ack_task",
                &scripts::ACK_TASK,
                &keys,
                &[&claim.receipt.as_str(), &id],
            )
            .await?;
        if removed == 0 {
            tracing::warn!(task = %claim.task.id, worker = %claim.worker,
                "acknowledged a task no longer in flight (reclaimed meanwhile?)");
        }
        Ok(())
    }

    async fn fail_task(&self, claim: &ClaimedTask, report: &str) -> Result<()> {
        let inflight = self.inflight_key(&claim.worker);
        let names = self.names();
        let failure = TaskFailure::new(claim, report);
        let json = encode(&names.failed_tasks, &failure)?;
        self.check_json_size(&names.failed_tasks, &json)?;
        let keys = [
            inflight.as_str(),
            names.deliveries.as_str(),
            names.failed_tasks.as_str(),
        ];
        let id = claim.task.id.to_string();
        // With an operation id: the report is kept once.
        let _: i64 = self
            .eval_once(
                "fail_task",
                &scripts::FAIL_TASK,
                &keys,
                &[&claim.receipt.as_str(), &id, &json],
                None,
            )
            .await?;
        Ok(())
    }

    async fn reclaim_abandoned(&self, to: &WorkerId, max_deliveries: u32) -> Result<ReclaimReport> {
        let names = self.names();
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(&names.task_workers);
        let mut holders: Vec<String> = self.query("reclaim_abandoned", &cmd).await?;
        holders.sort();
        let holders: Vec<WorkerId> = holders
            .into_iter()
            .filter_map(|w| WorkerId::new(w).ok())
            .filter(|w| w != to)
            .collect();
        let mut report = ReclaimReport::default();
        if holders.is_empty() {
            return Ok(report);
        }
        // Who is dead, in one round trip; the script checks again atomically.
        let mut pipe = redis::pipe();
        for w in &holders {
            pipe.cmd("EXISTS")
                .arg(self.key(&Key::WorkerStatus(w.clone())));
        }
        let alive: Vec<i64> = self.pipeline("reclaim_abandoned", &pipe).await?;
        let to_queue = self.queue_key(to);
        let grace_ms = u64::try_from(self.limits().worker_grace.as_millis()).unwrap_or(u64::MAX);
        let now = encode("time", &Utc::now())?;
        for (worker, alive) in holders.into_iter().zip(alive) {
            if alive > 0 {
                continue;
            }
            let status = self.key(&Key::WorkerStatus(worker.clone()));
            let queue = self.queue_key(&worker);
            let inflight = self.inflight_key(&worker);
            let keys = [
                status.as_str(),
                queue.as_str(),
                inflight.as_str(),
                to_queue.as_str(),
                names.deliveries.as_str(),
                names.failed_tasks.as_str(),
                names.task_workers.as_str(),
                names.seen.as_str(),
            ];
            let worker_json = encode("worker", &worker)?;
            let report_json = encode(
                "report",
                &format!(
                    "worker {worker} stopped heartbeating; the task was handed out \
                     {max_deliveries} time(s) already, the limit"
                ),
            )?;
            let reply: Value = self
                .eval_once(
                    "reclaim_abandoned",
                    &scripts::RECLAIM_WORKER,
                    &keys,
                    &[
                        &worker.as_str(),
                        &max_deliveries,
                        &worker_json,
                        &report_json,
                        &now,
                        &to.as_str(),
                        &grace_ms,
                    ],
                    None,
                )
                .await?;
            let mut lists = items(reply).unwrap_or_default().into_iter();
            let requeued = lists.next().and_then(items).unwrap_or_default();
            let dead = lists.next().and_then(items).unwrap_or_default();
            if requeued.is_empty() && dead.is_empty() {
                continue;
            }
            let ids = |vals: Vec<Value>| -> Vec<TaskId> {
                vals.iter()
                    .filter_map(text)
                    .filter_map(|t| TaskId::parse(&t).ok())
                    .collect()
            };
            report.requeued.extend(ids(requeued));
            report.dead_lettered.extend(ids(dead));
            report.from_workers.push(worker);
        }
        Ok(report)
    }

    async fn queued_tasks(&self, worker: &WorkerId) -> Result<u64> {
        let queue = self.queue_key(worker);
        let mut cmd = redis::cmd("LLEN");
        cmd.arg(&queue);
        match self.query_raw::<u64>("queued_tasks", &cmd).await {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail_on_key(&e, "queued_tasks", &queue, "list").await),
        }
    }

    async fn failed_tasks(&self) -> Result<Vec<TaskFailure>> {
        let key = &self.names().failed_tasks;
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(key).arg(0).arg(-1);
        let raw: Vec<Vec<u8>> = self.query("failed_tasks", &cmd).await?;
        raw.into_iter()
            .map(|r| {
                let r = String::from_utf8(r)
                    .map_err(|e| Error::decode(key, format!("not UTF-8: {e}")))?;
                decode(key, &r)
            })
            .collect()
    }
}
