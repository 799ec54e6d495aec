//! Two workers on a scripted model, over Redis, every call metered by the
//! accountant against a $0.05 session budget. `REDIS_URL` names the Redis.
use std::{sync::Arc, time::Duration};

use serde_json::json;
use swarmbus_agents::agent::{AgentWorker, TaskLimits};
use swarmbus_agents::runtime::{Worker, WorkerConfig};
use swarmbus_agents::scripted::ScriptedModel;
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::llm::Usage;
use swarmbus_core::{Bus, Meter, Money, Namespace, SessionId, Task, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, ReportFilter, Tiers};
use swarmbus_redis::{RedisBus, RedisConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let ns = Namespace::new(format!("library-user-{}", std::process::id()))?;
    let bus: Arc<dyn Bus> =
        Arc::new(RedisBus::connect(RedisConfig::from_url(&url)?.namespace(ns)).await?);
    let budget = BudgetLimits::unlimited().per_session(Money::parse("0.05")?);
    let accountant = Accountant::new(
        bus.clone(),
        Arc::new(PriceTable::built_in()?),
        Tiers::default(),
        budget,
    )?;
    let meter: Arc<dyn Meter> = Arc::new(accountant.clone());
    let model = ScriptedModel::new("claude-haiku-4-5").responding(|req| {
        let m = ScriptedModel::new("claude-haiku-4-5");
        Ok(match req.messages.len() {
            1 => m.tool_use("t1", "list_files", json!({}), Usage::new(1_200, 40)),
            _ => m.text(
                "Files listed\nThe workspace has Cargo.toml and src/.",
                Usage::new(1_500, 30),
            ),
        })
    });
    let workspace = Arc::new(Workspace::new(env!("CARGO_MANIFEST_DIR"))?);
    let session = SessionId::new("library-user")?;
    let mut workers = Vec::new();
    for n in 1..=2 {
        let id = WorkerId::new(format!("haiku-{n}"))?;
        let tools = Toolbox::built_in(CommandAllowList::default());
        let agent = AgentWorker::new(
            Arc::new(model.clone()),
            bus.clone(),
            workspace.clone(),
            tools,
            id.clone(),
        )
        .meter(meter.clone())
        .limits(TaskLimits::default().max_usd(Money::parse("0.01")?));
        let task = Task::new(session.clone(), "read", "list the workspace's files");
        bus.push_task(&id, &task).await?;
        let cfg = WorkerConfig::new(id)
            .claim_wait(Duration::from_millis(200))
            .idle_exit(Duration::from_secs(1));
        workers.push(tokio::spawn(
            Worker::shared(bus.clone(), agent, cfg).run(std::future::pending()),
        ));
    }
    let mut findings = 0;
    for w in workers {
        findings += w.await??.findings.len();
    }
    let report = accountant.report(&ReportFilter::all()).await?;
    println!(
        "{findings} findings; {} calls, ${} on {:?}",
        report.total.calls,
        report.total.usd,
        report.by_tier.keys()
    );
    assert_eq!(
        (findings, report.total.calls),
        (2, 4),
        "two tasks, two metered calls each"
    );
    assert!(report.total.usd > Money::ZERO && report.total.usd < Money::parse("0.05")?);
    Ok(())
}
