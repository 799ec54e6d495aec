//! The soak's worker processes: started, supervised, killed and stopped,
//! with the peak RSS seen of each.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use swarmbus_core::WorkerId;

use crate::AnyError;

/// The worker processes and the peak RSS seen of each.
pub(crate) struct Fleet {
    pub(crate) exe: PathBuf,
    pub(crate) swarm_cli: bool,
    pub(crate) url: String,
    pub(crate) mock_url: String,
    pub(crate) dir: PathBuf,
    pub(crate) slots: Vec<(WorkerId, Child)>,
    pub(crate) generation: u64,
    pub(crate) killed: Vec<String>,
    pub(crate) exited: Vec<String>,
    pub(crate) started: Vec<String>,
    pub(crate) peak_rss_kb: BTreeMap<String, u64>,
}

/// Peak resident set (`VmHWM`, kB) of process `pid`, from `/proc`.
pub(crate) fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Fleet {
    /// Starts a new worker process for `slot` (not yet in `slots`).
    pub(crate) fn spawn(&mut self, slot: usize) -> Result<(WorkerId, Child), AnyError> {
        self.generation += 1;
        let id = WorkerId::new(format!("soak-w{slot}-g{}", self.generation))?;
        let log = std::fs::File::create(self.dir.join(format!("{id}.log")))?;
        let mut cmd = Command::new(&self.exe);
        if self.swarm_cli {
            // The CLI's worker: `swarm worker run`, Redis from REDIS_URL.
            cmd.args(["worker", "run", "--id", id.as_str(), "--heartbeat-ttl", "3"])
                .env("REDIS_URL", &self.url);
        } else {
            cmd.args(["worker", "--id", id.as_str(), "--redis", &self.url]);
        }
        let child = cmd
            .arg("--workspace")
            .arg(&self.dir)
            .env("ANTHROPIC_BASE_URL", &self.mock_url)
            .env("ANTHROPIC_API_KEY", format!("soak-{id}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.started.push(id.to_string());
        Ok((id, child))
    }

    /// Updates the peak RSS of every running worker.
    pub(crate) fn sample(&mut self) {
        for (id, child) in &self.slots {
            if let Some(kb) = vm_hwm_kb(child.id()) {
                let e = self.peak_rss_kb.entry(id.to_string()).or_default();
                *e = (*e).max(kb);
            }
        }
    }

    /// Replaces workers that exited by themselves.
    pub(crate) fn supervise(&mut self) -> Result<(), AnyError> {
        self.sample();
        for slot in 0..self.slots.len() {
            if let Ok(Some(status)) = self.slots[slot].1.try_wait() {
                self.exited
                    .push(format!("{} ({status})", self.slots[slot].0));
                self.slots[slot] = self.spawn(slot)?;
            }
        }
        Ok(())
    }

    /// Kills the worker in `slot` (SIGKILL) and starts a new one there.
    pub(crate) fn kill_one(&mut self, slot: usize) -> Result<(), AnyError> {
        self.sample();
        let (id, child) = &mut self.slots[slot];
        let _ = child.kill();
        let _ = child.wait();
        self.killed.push(id.to_string());
        self.slots[slot] = self.spawn(slot)?;
        Ok(())
    }

    /// The ids of the workers running now.
    pub(crate) fn ids(&self) -> Vec<WorkerId> {
        self.slots.iter().map(|(id, _)| id.clone()).collect()
    }

    /// SIGINT to every worker, then SIGKILL to any still running after 15 s.
    pub(crate) fn stop_all(&mut self) {
        self.sample();
        for (_, child) in &self.slots {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for (id, child) in &mut self.slots {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        eprintln!("worker {id} did not stop on SIGINT; killed");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.slots {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
