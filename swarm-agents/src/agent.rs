//! [`AgentWorker`]: a [`TaskHandler`] that runs a tool-use loop on any
//! [`LanguageModel`].
//!
//! The prompt is a role prompt for the worker tier, the shared context and
//! the tool definitions (together the cacheable prefix, marked for the
//! prompt cache so parallel workers read it from the cache), then the task
//! with the findings it depends on, packed into a token budget. The loop:
//! call the model; if it asks for tools, run them (sandboxed) and send the
//! results; again, until it ends its turn.
//!
//! Before every call the halt switch and the task's limits are checked
//! (steps, tokens, dollars, wall time), and the call's cost is reserved from
//! the budget; reaching a limit, a refused reservation or a halt stops the
//! task with a report that says which (the runtime reports it as failed:
//! never retried silently). Every call's usage is recorded with the worker,
//! task, tier and model.
//!
//! A model call that failed with a wait the provider named (a 429 with
//! `retry-after`: core's [`Retry::After`]) is made again after that wait,
//! at most [`TaskLimits::model_retries`] times in a row and only when the
//! wait fits in what is left of the task's wall time; its hold is released
//! first (a failed call billed nothing) and a new one taken for the retry.
//! A halt during the wait ends it (the switch is read every
//! [`HALT_POLL_DURING_WAIT`]) and the task stops as halted.
//! Any other failure stops the task at once: [`Retry::Retry`] (no wait
//! named) is not retried here, since the provider clients retry those
//! themselves with backoff before they give up.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use swarmbus_core::accounting::{Meter, MeteredCall};
use swarmbus_core::bus::Bus;
use swarmbus_core::clock::{Clock, SharedClock, SystemClock};
use swarmbus_core::error::{Error as CoreError, Retry};
use swarmbus_core::keys::{FindingId, WorkerId};
use swarmbus_core::llm::{
    CacheTtl, Completion, CompletionRequest, ContentBlock, LanguageModel, Message, Role,
    StopReason, ToolSpec, Usage,
};
use swarmbus_core::money::Money;
use swarmbus_core::{Task, Tier};

use crate::context_pack::pack_dependencies;
use crate::runtime::{TaskHandler, TaskOutput};
use crate::tools::{TaskDiff, ToolContext, ToolDefinition, Toolbox, Workspace, patch};

/// The worker tier's role prompt.
pub const WORKER_ROLE_PROMPT: &str = "You are a worker agent in a swarm coordinated over a shared \
bus. You get one task. Do it with the tools: read, list and search files of the workspace, \
read-only git, allow-listed commands, and the swarm's findings. Every path is relative to the \
workspace root; you cannot leave it. Be economical: few, targeted tool calls. When done, answer \
with the result only: a first line that is a short title, then the facts with file paths, \
numbers and finding ids in brackets where they support a claim. If the task cannot be done, say \
why in the first line.";

/// How often a task waiting to retry a rate-limited call looks at the halt
/// switch: a halted swarm stops it within this long, not after the wait.
pub const HALT_POLL_DURING_WAIT: Duration = Duration::from_secs(1);

/// Limits of one task.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TaskLimits {
    /// Model calls at most.
    pub max_steps: u32,
    /// Tokens at most (every input bucket plus output, over all calls).
    pub max_tokens: u64,
    /// Dollars at most (as priced by the meter), if limited.
    pub max_usd: Option<Money>,
    /// Wall time at most.
    pub wall_time: Duration,
    /// Output tokens per call.
    pub max_output_tokens: u32,
    /// Tokens of dependent findings in the prompt.
    pub dependency_tokens: u64,
    /// Times one model call is made again after the provider asked for a
    /// wait ([`Retry::After`], such as a 429 with `retry-after`), each time
    /// only when the wait fits in what is left of the wall time. 0: never.
    pub model_retries: u32,
    /// Tool calls run from one answer; the rest get an error result the
    /// model reads (per task, the tools' own limits apply: output, writes).
    pub max_tool_calls_per_answer: u32,
}

impl Default for TaskLimits {
    /// 16 calls, 400,000 tokens, no dollar limit of its own (the budget
    /// still applies), 5 minutes, 4,096 output tokens per call, 8,000 tokens
    /// of dependent findings, 3 retries of a call the provider asked to
    /// wait for, 32 tool calls per answer.
    fn default() -> Self {
        Self {
            max_steps: 16,
            max_tokens: 400_000,
            max_usd: None,
            wall_time: Duration::from_secs(300),
            max_output_tokens: 4_096,
            dependency_tokens: 8_000,
            model_retries: 3,
            max_tool_calls_per_answer: 32,
        }
    }
}

impl TaskLimits {
    /// Sets the step limit.
    pub fn max_steps(mut self, n: u32) -> Self {
        self.max_steps = n;
        self
    }

    /// Sets the token limit.
    pub fn max_tokens(mut self, n: u64) -> Self {
        self.max_tokens = n;
        self
    }

    /// Sets the dollar limit.
    pub fn max_usd(mut self, usd: Money) -> Self {
        self.max_usd = Some(usd);
        self
    }

    /// Sets the wall-time limit.
    pub fn wall_time(mut self, d: Duration) -> Self {
        self.wall_time = d;
        self
    }

    /// Sets how many tool calls of one answer run.
    pub fn max_tool_calls_per_answer(mut self, n: u32) -> Self {
        self.max_tool_calls_per_answer = n;
        self
    }

    /// Sets how many times one model call is retried after a wait the
    /// provider asked for (0: never).
    pub fn model_retries(mut self, n: u32) -> Self {
        self.model_retries = n;
        self
    }
}

/// Why a task stopped before the model finished.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StopCause {
    /// The step limit was reached.
    #[error("step limit of {limit} model calls reached")]
    Steps {
        /// The limit.
        limit: u32,
    },
    /// The token limit was reached.
    #[error("token limit reached: {used} of {limit} tokens used")]
    Tokens {
        /// Tokens used.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// The task's dollar limit was reached.
    #[error("dollar limit reached: ${spent} of ${limit} spent")]
    Dollars {
        /// Spent so far.
        spent: Money,
        /// The limit.
        limit: Money,
    },
    /// The budget refused the next call.
    #[error("budget refused the next call: {reason}")]
    Budget {
        /// What the budget said.
        reason: String,
    },
    /// The wall-time limit was reached.
    #[error("wall-time limit of {limit:?} reached")]
    WallTime {
        /// The limit.
        limit: Duration,
    },
    /// The swarm was halted.
    #[error("swarm halted: {reason}")]
    Halted {
        /// The halt report's `failed`.
        reason: String,
    },
    /// The model call failed.
    #[error("model call failed: {message}")]
    Model {
        /// The error, as the provider classified it: provider, model, kind,
        /// HTTP status, message, retry delay and request id when known, and
        /// why it was not retried when the provider asked for a wait.
        message: String,
    },
    /// The answer was cut at the output-token limit without a tool call.
    #[error("the answer was cut at the {limit}-token output limit")]
    Truncated {
        /// The per-call output limit.
        limit: u32,
    },
    /// The model refused or its output was filtered.
    #[error("the model refused: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },
    /// The model ended its turn with no answer.
    #[error("the model gave an empty answer")]
    Empty,
    /// The bus failed.
    #[error("bus: {message}")]
    Bus {
        /// What failed.
        message: String,
    },
    /// The task's workspace could not be prepared, or its changes were
    /// over the task's limits.
    #[error("workspace: {message}")]
    Workspace {
        /// What failed.
        message: String,
    },
}

/// A task the model finished.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentRun {
    /// The final text.
    pub text: String,
    /// Tokens of every call.
    pub usage: Usage,
    /// The model that answered.
    pub model: String,
    /// Model calls made.
    pub steps: u32,
    /// Tool calls run.
    pub tool_calls: u32,
    /// Dollars spent, as the meter priced them (an unpriced answer at its
    /// estimate).
    pub usd: Money,
    /// Findings the answer relies on: the dependencies it was given and
    /// cites, and those its tools wrote.
    pub cites: Vec<FindingId>,
    /// A write task's change to its scratch copy (`None` on a read-only task
    /// or when nothing changed).
    pub diff: Option<TaskDiff>,
}

/// A task stopped before the end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("stopped after {steps} model calls ({tokens} tokens): {cause}", tokens = usage.total_tokens())]
#[non_exhaustive]
pub struct AgentStop {
    /// Why.
    pub cause: StopCause,
    /// Model calls made.
    pub steps: u32,
    /// Tokens used until then.
    pub usage: Usage,
}

/// A worker whose tasks are done by a model with tools.
#[derive(Clone)]
pub struct AgentWorker {
    model: Arc<dyn LanguageModel>,
    bus: Arc<dyn Bus>,
    workspace: Arc<Workspace>,
    tools: Toolbox,
    worker: WorkerId,
    tier: Tier,
    limits: TaskLimits,
    meter: Option<Arc<dyn Meter>>,
    role_prompt: String,
    shared_context: Option<String>,
    cache: Option<CacheTtl>,
    clock: SharedClock,
}

impl std::fmt::Debug for AgentWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentWorker")
            .field("model", &self.model.model_id())
            .field("worker", &self.worker)
            .field("tier", &self.tier)
            .field("tools", &self.tools)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl AgentWorker {
    /// A worker-tier agent `worker` on `model`, with `tools` confined to
    /// `workspace`. Prompt caching is on (5 minutes) by default.
    pub fn new(
        model: Arc<dyn LanguageModel>,
        bus: Arc<dyn Bus>,
        workspace: Arc<Workspace>,
        tools: Toolbox,
        worker: WorkerId,
    ) -> Self {
        Self {
            model,
            bus,
            workspace,
            tools,
            worker,
            tier: Tier::Worker,
            limits: TaskLimits::default(),
            meter: None,
            role_prompt: WORKER_ROLE_PROMPT.to_owned(),
            shared_context: None,
            cache: Some(CacheTtl::FiveMinutes),
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` (the system clock by default): a failed
    /// call that names the moment to wait until waits from its now.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: TaskLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Meters every call: its estimate reserved on the budgets before it
    /// is made, its usage settled (priced once, booked) after.
    pub fn meter(mut self, meter: Arc<dyn Meter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Sets the tier its calls are recorded under (coordinator-tier work
    /// done by an agent).
    pub fn tier(mut self, tier: Tier) -> Self {
        self.tier = tier;
        self
    }

    /// Replaces the role prompt.
    pub fn role_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.role_prompt = prompt.into();
        self
    }

    /// Context shared by every task (it joins the cached prefix).
    pub fn shared_context(mut self, context: impl Into<String>) -> Self {
        self.shared_context = Some(context.into());
        self
    }

    /// Sets the prompt cache (`None`: no cache marks).
    pub fn cache(mut self, ttl: Option<CacheTtl>) -> Self {
        self.cache = ttl;
        self
    }

    /// The system prompt: the role prompt and the shared context.
    fn system(&self) -> String {
        match &self.shared_context {
            Some(c) => format!("{}\n\n# Shared context\n{c}", self.role_prompt),
            None => self.role_prompt.clone(),
        }
    }

    /// The first user message: the task and its dependent findings.
    async fn task_prompt(&self, task: &Task) -> Result<(String, Vec<FindingId>), StopCause> {
        let deps = pack_dependencies(&*self.bus, task, self.limits.dependency_tokens)
            .await
            .map_err(|e| StopCause::Bus {
                message: e.to_string(),
            })?;
        let mut s = format!("# Task ({})\n{}\n", task.kind, task.instructions);
        if let Some(goal) = task.payload.get("goal").and_then(Value::as_str) {
            s.push_str(&format!("\nThe swarm's goal: {goal}\n"));
        }
        let allow = task
            .payload
            .get("allow_write")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        s.push_str(if allow {
            "\nThis task may write files in the workspace.\n"
        } else {
            "\nThis task is read-only: do not write files.\n"
        });
        if !deps.included.is_empty() || !deps.left_out.is_empty() {
            s.push_str("\n# Findings this task builds on\n");
            s.push_str(&deps.render());
        }
        Ok((s, deps.included.iter().map(|f| f.id.clone()).collect()))
    }

    /// Runs `task` to the end or to the first limit.
    pub async fn run_task(&self, task: &Task) -> Result<AgentRun, AgentStop> {
        let started = tokio::time::Instant::now();
        let mut usage = Usage::default();
        let mut steps = 0u32;
        let stop = |cause: StopCause, steps: u32, usage: Usage| AgentStop {
            cause,
            steps,
            usage,
        };
        let (prompt, deps) = self
            .task_prompt(task)
            .await
            .map_err(|c| stop(c, 0, usage))?;
        // A write task works on a scratch copy, never the user's tree.
        let ctx = ToolContext::for_task(
            Arc::clone(&self.workspace),
            Arc::clone(&self.bus),
            self.worker.clone(),
            task.clone(),
        )
        .await
        .map_err(|e| {
            stop(
                StopCause::Workspace {
                    message: e.to_string(),
                },
                0,
                usage,
            )
        })?;
        let specs: Vec<ToolSpec> = self.tools.definitions().iter().map(tool_spec).collect();
        let system = self.system();
        let mut messages = vec![Message::user(prompt)];
        let mut tool_calls = 0u32;
        let mut usd = Money::ZERO;
        // Retries of the call in progress (reset once a call succeeds).
        let mut retries = 0u32;
        loop {
            // Checked before every step: halt, then each limit.
            match self.bus.halted().await {
                Ok(Some(h)) => {
                    return Err(stop(StopCause::Halted { reason: h.failed }, steps, usage));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(stop(
                        StopCause::Bus {
                            message: e.to_string(),
                        },
                        steps,
                        usage,
                    ));
                }
            }
            if steps >= self.limits.max_steps {
                return Err(stop(
                    StopCause::Steps {
                        limit: self.limits.max_steps,
                    },
                    steps,
                    usage,
                ));
            }
            if usage.total_tokens() >= self.limits.max_tokens {
                return Err(stop(
                    StopCause::Tokens {
                        used: usage.total_tokens(),
                        limit: self.limits.max_tokens,
                    },
                    steps,
                    usage,
                ));
            }
            if let Some(limit) = self.limits.max_usd
                && usd >= limit
            {
                return Err(stop(StopCause::Dollars { spent: usd, limit }, steps, usage));
            }
            let left = self.limits.wall_time.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(stop(
                    StopCause::WallTime {
                        limit: self.limits.wall_time,
                    },
                    steps,
                    usage,
                ));
            }

            let request = self.request(&system, &messages, &specs);
            let call = MeteredCall::new(self.tier, self.model.model_id())
                .worker(self.worker.clone())
                .session(task.session.clone())
                .task(task.id);
            let estimate =
                estimate_usage(&system, &messages, &specs, self.limits.max_output_tokens);
            let hold = match &self.meter {
                Some(m) => match m.reserve(call, estimate).await {
                    Ok(h) => Some(h),
                    Err(e) if e.is_refusal() => {
                        let reason = match e {
                            swarmbus_core::Error::Refused { reason, .. } => reason,
                            other => other.to_string(),
                        };
                        return Err(stop(StopCause::Budget { reason }, steps, usage));
                    }
                    Err(e) => {
                        let message = format!("the meter did not hold the call: {e}");
                        return Err(stop(StopCause::Bus { message }, steps, usage));
                    }
                },
                None => None,
            };
            // Against a dollar limit an unpriced call is never $0: refused
            // before it is made when the meter has no price for it.
            if let (Some(limit), Some(h)) = (self.limits.max_usd, &hold)
                && h.estimate().is_none()
            {
                self.cancel(hold).await;
                let reason = format!(
                    "{} has no price: an unpriced call cannot be counted against the task's ${limit} limit",
                    self.model.model_id()
                );
                return Err(stop(StopCause::Budget { reason }, steps, usage));
            }
            steps += 1;
            let answer = tokio::time::timeout(left, self.model.complete(request)).await;
            let completion: Completion = match answer {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    // A failed call billed nothing: its hold goes back now,
                    // before any wait; a retry takes a hold of its own.
                    self.cancel(hold).await;
                    let left = self.limits.wall_time.saturating_sub(started.elapsed());
                    match self.retry_wait(&e, retries, left) {
                        Ok(wait) => {
                            retries += 1;
                            tracing::info!(
                                worker = %self.worker,
                                task = %task.id,
                                model = %self.model.model_id(),
                                retry = retries,
                                of = self.limits.model_retries,
                                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                                error = %model_failure(&e),
                                "model asked to wait: retrying the call after the wait"
                            );
                            // A halt during the wait ends it; the check at
                            // the top of the loop then stops the task.
                            self.wait_unless_halted(wait).await;
                            // The same call again: it is one step, not two.
                            steps -= 1;
                            continue;
                        }
                        Err(not_retried) => {
                            let mut message = model_failure(&e);
                            if let Some(why) = not_retried {
                                message.push_str("; not retried: ");
                                message.push_str(&why);
                            }
                            return Err(stop(StopCause::Model { message }, steps, usage));
                        }
                    }
                }
                Err(_) => {
                    self.cancel(hold).await;
                    return Err(stop(
                        StopCause::WallTime {
                            limit: self.limits.wall_time,
                        },
                        steps,
                        usage,
                    ));
                }
            };
            retries = 0;
            usage += completion.usage;
            if let (Some(m), Some(h)) = (&self.meter, hold) {
                match m.settle(h, &completion.model, completion.usage).await {
                    // Unpriced after the call (the answer named another
                    // model): counted at the estimate held; against a
                    // dollar limit without one the task stops, never
                    // counting the call as $0.
                    Ok(settled) => match (settled.counted(), self.limits.max_usd) {
                        (Some(cost), _) => usd += cost,
                        (None, Some(limit)) => {
                            let reason = format!(
                                "{} answered unpriced: the call cannot be counted against the task's ${limit} limit",
                                completion.model
                            );
                            return Err(stop(StopCause::Budget { reason }, steps, usage));
                        }
                        (None, None) => {}
                    },
                    // Dropped: the call stays on the books at its estimate.
                    Err(unsettled) => {
                        let message =
                            format!("the ledger did not book the call: {}", unsettled.error);
                        return Err(stop(StopCause::Bus { message }, steps, usage));
                    }
                }
            }
            let calls = tool_uses(&completion);
            messages.push(completion.to_message());
            match &completion.stop_reason {
                StopReason::ToolUse => {}
                StopReason::PauseTurn => continue,
                StopReason::EndTurn | StopReason::StopSequence if calls.is_empty() => {
                    let text = completion.text();
                    if text.trim().is_empty() {
                        return Err(stop(StopCause::Empty, steps, usage));
                    }
                    let mut cites: Vec<FindingId> = deps
                        .iter()
                        .filter(|id| text.contains(&id.to_string()))
                        .cloned()
                        .collect();
                    cites.extend(ctx.written());
                    let diff = match &ctx.scratch {
                        Some(scratch) => match scratch.diff().await {
                            Ok(d) if d.is_empty() => None,
                            Ok(d) => Some(d),
                            Err(e) => {
                                let message = e.to_string();
                                return Err(stop(StopCause::Workspace { message }, steps, usage));
                            }
                        },
                        None => None,
                    };
                    return Ok(AgentRun {
                        text,
                        usage,
                        model: completion.model.clone(),
                        steps,
                        tool_calls,
                        usd,
                        cites,
                        diff,
                    });
                }
                StopReason::MaxTokens if calls.is_empty() => {
                    return Err(stop(
                        StopCause::Truncated {
                            limit: self.limits.max_output_tokens,
                        },
                        steps,
                        usage,
                    ));
                }
                StopReason::Refusal | StopReason::ContentFilter(_) => {
                    return Err(stop(
                        StopCause::Refused {
                            reason: completion
                                .stop_details
                                .as_ref()
                                .and_then(|d| d.explanation.clone().or(d.category.clone()))
                                .unwrap_or_else(|| completion.stop_reason.as_str().to_owned()),
                        },
                        steps,
                        usage,
                    ));
                }
                _ if calls.is_empty() => {
                    return Err(stop(
                        StopCause::Model {
                            message: format!("stopped with {}", completion.stop_reason.as_str()),
                        },
                        steps,
                        usage,
                    ));
                }
                _ => {}
            }
            // Every tool call gets a result, errors included: the model
            // reads a refusal and may try something else.
            let mut results = Vec::with_capacity(calls.len());
            let per_answer = self.limits.max_tool_calls_per_answer;
            for (n, (id, name, input)) in calls.into_iter().enumerate() {
                if n >= usize::try_from(per_answer).unwrap_or(usize::MAX) {
                    results.push(ContentBlock::tool_error(
                        id,
                        format!(
                            "refused: not run; at most {per_answer} tool calls of one answer run"
                        ),
                    ));
                    continue;
                }
                tool_calls += 1;
                let left = self.limits.wall_time.saturating_sub(started.elapsed());
                let out = tokio::time::timeout(left, self.tools.call(&ctx, &name, &input)).await;
                let (content, is_error) = match out {
                    Ok(Ok(text)) => (text, false),
                    Ok(Err(e)) => {
                        tracing::info!(worker = %self.worker, task = %task.id, tool = %name, error = %e, "tool refused or failed");
                        (e.to_string(), true)
                    }
                    Err(_) => ("killed: the task's wall time ran out".to_owned(), true),
                };
                results.push(if is_error {
                    ContentBlock::tool_error(id, content)
                } else {
                    ContentBlock::tool_result(id, content)
                });
            }
            messages.push(Message::new(Role::User, results));
        }
    }

    /// Gives back the hold of a call that was not made.
    async fn cancel(&self, hold: Option<swarmbus_core::accounting::Hold>) {
        if let (Some(m), Some(h)) = (&self.meter, hold)
            && let Err(e) = m.cancel(h).await
        {
            tracing::warn!(worker = %self.worker, error = %e, "a call's hold was not given back");
        }
    }

    /// Sleeps `wait`, looking at the halt switch every
    /// [`HALT_POLL_DURING_WAIT`]: a halt ends the wait early (a bus that
    /// cannot be read does not; the next step's check reports it).
    async fn wait_unless_halted(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let now = tokio::time::Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep((until - now).min(HALT_POLL_DURING_WAIT)).await;
            if let Ok(Some(_)) = self.bus.halted().await {
                return;
            }
        }
    }

    /// How long to wait before making a failed call again, or why not
    /// (`Err(None)`: a failure that is never retried here, so nothing to
    /// add to its report). Only a wait the provider named is retried: once
    /// per call at most `model_retries` times, and only when it ends before
    /// the wall time left (`left`) does.
    fn retry_wait(
        &self,
        e: &CoreError,
        retries: u32,
        left: Duration,
    ) -> Result<Duration, Option<String>> {
        // Core's one retry policy, configured as this loop's rule: only a
        // wait the provider named, exactly that wait, at most
        // `model_retries` in a row, and only when it ends within the task.
        use swarmbus_core::retry::{Attempt, Backoff, Decision, Failure, GiveUp, RetryPolicy};
        let now = self.clock.now();
        let verdict: Retry = e.retry_at(now);
        let attempt = Attempt::new(Failure::of_retry(verdict), retries)
            .time_left(left)
            .at(now);
        let mut policy = Backoff::named_waits_only().max_retries(self.limits.model_retries);
        match policy.decide(&attempt) {
            Decision::Retry { wait, .. } => Ok(wait),
            Decision::GiveUp(GiveUp::Attempts { limit: 0, .. }) => {
                Err(Some("model retries are off for this task".to_owned()))
            }
            Decision::GiveUp(why @ GiveUp::Attempts { .. }) => Err(Some(why.to_string())),
            Decision::GiveUp(why @ GiveUp::WaitTooLong { .. }) => {
                Err(Some(format!("{why} of the task's wall time")))
            }
            _ => Err(None),
        }
    }

    fn request(&self, system: &str, messages: &[Message], specs: &[ToolSpec]) -> CompletionRequest {
        let mut r = CompletionRequest::from_messages(messages.to_vec())
            .system(system)
            .tools(specs.to_vec())
            .max_output_tokens(self.limits.max_output_tokens);
        if let Some(ttl) = self.cache {
            // The cacheable prefix is tools + system: the same for every
            // task of every worker sharing this configuration.
            r = r.cache_system(ttl).cache_tools(ttl);
        }
        r
    }
}

#[async_trait]
impl TaskHandler for AgentWorker {
    async fn handle(&self, task: &Task) -> Result<TaskOutput, String> {
        match self.run_task(task).await {
            Ok(run) => {
                let mut lines = run.text.trim().lines();
                let title = lines
                    .next()
                    .map(|l| l.trim_start_matches('#').trim())
                    .filter(|l| !l.is_empty())
                    .unwrap_or("result");
                let title = crate::error::cut(title, 200);
                let mut tags = vec![task.kind.as_str(), "agent"];
                let body = match &run.diff {
                    Some(d) => {
                        tags.push(patch::DIFF_TAG);
                        patch::attach(run.text.trim(), d)
                    }
                    None => patch::neutralize(run.text.trim()),
                };
                Ok(TaskOutput::new(title, body)
                    .with_tags(tags)
                    .citing(run.cites)
                    .with_usage(run.usage, run.model))
            }
            Err(stop) => Err(stop.to_string()),
        }
    }
}

/// A failed call, for a report: the provider's own account once (core's
/// `Error::Model` display would add a second "model call failed: " to
/// [`StopCause::Model`]'s), with the request id and who served it when
/// known.
fn model_failure(e: &CoreError) -> String {
    match e {
        CoreError::Model(m) => {
            let mut s = m.to_string();
            if let Some(id) = &m.request_id {
                s.push_str(&format!("; request id {id}"));
            }
            if let Some(who) = &m.served_by {
                s.push_str(&format!("; served by {who}"));
            }
            s
        }
        other => other.to_string(),
    }
}

/// The core tool spec of a tool definition.
pub fn tool_spec(def: &ToolDefinition) -> ToolSpec {
    ToolSpec::new(&def.name, &def.description, def.input_schema.clone())
}

/// The tool calls of a completion: (id, name, input), owned.
fn tool_uses(c: &Completion) -> Vec<(String, String, Value)> {
    c.tool_calls()
        .into_iter()
        .map(|t| (t.id.to_owned(), t.name.to_owned(), t.input.clone()))
        .collect()
}

/// An estimate of a call's usage for the budget: the prompt's characters / 4
/// as fresh input, and the whole output allowance.
fn estimate_usage(system: &str, messages: &[Message], specs: &[ToolSpec], max_out: u32) -> Usage {
    let chars = system.len()
        + serde_json::to_string(messages).map_or(0, |s| s.len())
        + serde_json::to_string(specs).map_or(0, |s| s.len());
    Usage::new((chars / 4) as u64, u64::from(max_out))
}
