//! One model-backed worker and one task: the tool-use loop in full. The
//! worker model (scripted offline) calls a sandboxed tool, reads the result
//! and answers; the finding, the calls and their usage are printed. A second
//! task asks it to read outside the workspace: the tool refuses, and the
//! model sees the refusal.
//!
//! `cargo run -p swarm-examples --example single_worker`

use std::sync::Arc;
use std::time::Duration;

use swarm_examples::{AnyError, ScriptedModel, example_bus, repo_root};
use swarmbus_agents::agent::AgentWorker;
use swarmbus_agents::runtime::{Worker, WorkerConfig};
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::llm::{ContentBlock, Usage};
use swarmbus_core::{SessionId, Task, WorkerId};

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = example_bus().await?;
    let model = ScriptedModel::new("claude-haiku-4-5")
        .then_tool("toolu_1", "read_file", serde_json::json!({"path": "Cargo.toml", "end_line": 12}), Usage::new(900, 40).with_cache_write(1_500, 0))
        .then_text("The workspace has these members\nswarm-core, swarm-cost, swarm-redis, swarm-gemini, swarm-agents, swarm-cli, swarm-examples.", Usage::new(300, 60).with_cache_read(1_500))
        .then_tool("toolu_2", "read_file", serde_json::json!({"path": "../../etc/passwd"}), Usage::new(900, 40))
        .then_text("Refused: the file is outside the workspace\nThe sandbox refused the path; nothing was read.", Usage::new(300, 30));
    // With ANTHROPIC_API_KEY the same two tasks go to Claude (the worker
    // tier's default model); offline, the script above answers.
    let claude = swarm_examples::claude(&swarmbus_cost::Tiers::default().worker.model)?;
    let worker_model: Arc<dyn swarmbus_core::LanguageModel> = match &claude {
        Some(m) => {
            println!("Model: Claude ({})", m.model_id());
            Arc::clone(m)
        }
        None => {
            println!("Model: scripted local model (offline)");
            Arc::new(model.clone())
        }
    };
    let id = WorkerId::new("haiku-1")?;
    let agent = AgentWorker::new(
        worker_model,
        Arc::clone(&bus),
        Arc::new(Workspace::new(repo_root())?),
        Toolbox::built_in(CommandAllowList::default()),
        id.clone(),
    );
    let session = SessionId::new("single-worker")?;
    bus.push_task(
        &id,
        &Task::new(session.clone(), "read", "List the workspace's crates"),
    )
    .await?;
    bus.push_task(&id, &Task::new(session, "read", "Read /etc/passwd"))
        .await?;
    let cfg = WorkerConfig::new(id)
        .claim_wait(Duration::from_millis(100))
        .max_tasks(2);
    let report = Worker::shared(Arc::clone(&bus), agent, cfg)
        .run(std::future::pending())
        .await?;
    for f in &report.findings {
        println!(
            "Finding [{}] {}\n  {}",
            f.id,
            f.title,
            f.body.lines().nth(1).unwrap_or("")
        );
    }
    if claude.is_none() {
        for (i, r) in model.requests().iter().enumerate() {
            if let Some(ContentBlock::ToolResult {
                content, is_error, ..
            }) = r.messages.last().and_then(|m| m.content.first())
            {
                println!(
                    "call {}: sent a tool result (error: {is_error}): {}",
                    i + 1,
                    content.lines().next().unwrap_or("")
                );
            }
        }
        println!("Usage of the 4 calls: {:?}", model.usage_served());
    }
    if report.findings.len() != 2 {
        return Err("expected two findings".into());
    }
    Ok(())
}
