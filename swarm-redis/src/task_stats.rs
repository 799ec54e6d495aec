//! Task totals for `swarm serve`'s `/metrics`: tasks queued, in flight and
//! dead-lettered over every worker, in one pipeline after the worker set.

use redis::Pipeline;
use swarmbus_core::error::Result;
use swarmbus_core::keys::WorkerId;

use crate::bus::RedisBus;

/// Tasks on the bus, over every worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskTotals {
    /// Pushed and not yet claimed.
    pub queued: u64,
    /// Claimed and not yet completed or failed.
    pub in_flight: u64,
    /// Stopped or dead-lettered (`swarm:tasks:failed`).
    pub dead: u64,
    /// Workers holding queued or in-flight tasks.
    pub workers: u64,
}

impl RedisBus {
    /// Counts the tasks queued and in flight for every worker that holds
    /// some, and the dead-lettered ones: two round trips.
    pub async fn task_totals(&self) -> Result<TaskTotals> {
        let names = self.names();
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(&names.task_workers);
        let holders: Vec<String> = self.query("task_totals", &cmd).await?;
        let workers: Vec<WorkerId> = holders
            .into_iter()
            .filter_map(|w| WorkerId::new(w).ok())
            .collect();
        let mut pipe = Pipeline::new();
        pipe.cmd("LLEN").arg(&names.failed_tasks);
        for w in &workers {
            pipe.cmd("LLEN")
                .arg(self.key(&swarmbus_core::keys::Key::WorkerTasks(w.clone())));
            pipe.cmd("LLEN").arg(self.inflight_key(w));
        }
        let lens: Vec<u64> = self.pipeline("task_totals", &pipe).await?;
        let mut totals = TaskTotals {
            dead: lens.first().copied().unwrap_or(0),
            workers: u64::try_from(workers.len()).unwrap_or(u64::MAX),
            ..TaskTotals::default()
        };
        for pair in lens.get(1..).unwrap_or_default().chunks(2) {
            totals.queued += pair.first().copied().unwrap_or(0);
            totals.in_flight += pair.get(1).copied().unwrap_or(0);
        }
        Ok(totals)
    }
}
