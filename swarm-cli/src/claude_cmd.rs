//! `swarm claude generate`: one call to the Claude Messages API with
//! `ANTHROPIC_API_KEY` (and `ANTHROPIC_BASE_URL` when set).
//!
//! Output: the answer text (thinking is not printed). With `--stream` the
//! text is printed as it arrives. With `--json`, stdout is exactly one JSON
//! object, at the end (streamed text is not echoed, so the output always
//! parses): `{"text", "stop_reason", "model", "usage": {"input_tokens",
//! "output_tokens", "cache_read_tokens", "cache_write_5m_tokens",
//! "cache_write_1h_tokens"}}` (`input_tokens` is fresh input only; cache
//! reads and writes are their own buckets). A response cut by
//! `--max-tokens` is a success with `stop_reason: "max_tokens"`, even with
//! empty text. Any failure exits 1; with `--json` it prints `{"error":
//! {"kind", "http_status", "message", "retry_after_s"}}` where `kind` is
//! one of `invalid_request`, `unauthenticated`, `billing`,
//! `permission_denied`, `not_found`, `request_too_large`, `rate_limited`,
//! `spend_limit`, `server_error`, `overloaded`, `refused`,
//! `malformed_response`, `timeout`, `connection` or `invalid_input` (an
//! empty prompt, `--max-tokens 0`, a model id that is not a Claude model
//! id); a model the built-in price table lists as retired fails as
//! `not_found` before anything is sent, naming its replacement;
//! `retry_after_s` is how long to wait before trying again (until the
//! stop date for `spend_limit`), or null. The key is never printed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use swarmbus_anthropic::client::{API_KEY_VAR, check_model_id};
use swarmbus_anthropic::{
    AnthropicClient, ClientConfig, Error, MessagesRequest, MessagesResponse, StreamUpdate,
};

use crate::ctx::Ctx;

/// Claude commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClaudeCmd {
    /// Generate an answer to a prompt (key from ANTHROPIC_API_KEY).
    Generate(GenerateArgs),
}

/// `swarm claude generate`.
#[derive(Debug, clap::Args)]
pub(crate) struct GenerateArgs {
    /// The model id (`claude-sonnet-5-5`, `claude-haiku-5-5`).
    #[arg(long)]
    model: String,
    /// Print the answer as it arrives (server-sent events).
    #[arg(long)]
    stream: bool,
    /// The most output tokens (thinking included), at least 1. Parsed by the
    /// command, not by clap, so a bad value is an `invalid_input` error
    /// (exit 1, JSON with --json) like every other bad input.
    #[arg(long, default_value = "4096", allow_hyphen_values = true)]
    max_tokens: String,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    /// Print one JSON object with the text, stop reason, model and usage;
    /// failures as {"error": {...}}.
    #[arg(long)]
    json: bool,
    /// Whole-request timeout in seconds (the read timeout of a stream).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Retries of an overloaded or failing server (with backoff).
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// The largest response body (or stream event) read, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_body_bytes: usize,
    /// The prompt (several words are joined with spaces).
    #[arg(required = true, num_args = 1..)]
    prompt: Vec<String>,
}

/// Runs a Claude command.
pub(crate) async fn run(cmd: ClaudeCmd, ctx: &Ctx) -> ExitCode {
    match cmd {
        ClaudeCmd::Generate(args) => generate(args, ctx).await,
    }
}

fn retry_after_s(e: &Error, now: DateTime<Utc>) -> Option<u64> {
    match e.action() {
        swarmbus_core::ModelAction::RetryAfter { after } => Some(after.as_secs_f64().ceil() as u64),
        swarmbus_core::ModelAction::Stop { until: Some(t) } => {
            Some((t - now).num_seconds().max(0) as u64)
        }
        _ => None,
    }
}

fn error_json(e: &Error, now: DateTime<Utc>) -> serde_json::Value {
    json!({"error": {
        "kind": e.kind().as_str(),
        "http_status": e.http_status(),
        "message": e.to_string(),
        "retry_after_s": retry_after_s(e, now),
    }})
}

fn answer_json(r: &MessagesResponse) -> serde_json::Value {
    let u = r.usage();
    json!({
        "text": r.text(),
        "stop_reason": r.stop().as_str(),
        "model": r.model,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens,
            "cache_write_5m_tokens": u.cache_write_5m_tokens,
            "cache_write_1h_tokens": u.cache_write_1h_tokens,
        }
    })
}

/// Checks the arguments and builds the client and request; nothing is
/// sent when they are wrong.
fn prepare(args: &GenerateArgs, ctx: &Ctx) -> Result<(AnthropicClient, MessagesRequest), Error> {
    let prompt = args.prompt.join(" ");
    if prompt.trim().is_empty() {
        return Err(Error::InvalidInput {
            field: "prompt",
            reason: "the prompt is empty".into(),
        });
    }
    let max_tokens = args
        .max_tokens
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::InvalidInput {
            field: "--max-tokens",
            reason: format!(
                "must be a whole number from 1 to {}, not {:?}",
                u32::MAX,
                args.max_tokens.chars().take(32).collect::<String>()
            ),
        })?;
    check_model_id(&args.model)?;
    if !args.model.starts_with("claude-") {
        return Err(Error::InvalidInput {
            field: "--model",
            reason: format!(
                "{:?} is not a Claude model id (claude-…)",
                args.model.chars().take(64).collect::<String>()
            ),
        });
    }
    if args.system.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(Error::InvalidInput {
            field: "--system",
            reason: "the system prompt is empty".into(),
        });
    }
    let timeout = Duration::from_secs(args.timeout.max(1));
    let config = ClientConfig::from_env()
        .model(args.model.clone())
        .timeouts(Duration::from_secs(10).min(timeout), timeout)
        .request_timeout(timeout)
        .max_body_bytes(args.max_body_bytes.max(1))
        .retries(
            args.retries,
            Duration::from_millis(500),
            Duration::from_secs(8),
        );
    // The built-in price table knows each model's lifecycle: a retired
    // model is refused before sending (naming its replacement), a
    // deprecated one warned about on stderr.
    let table = ctx
        .prices()
        .inspect_err(|e| {
            tracing::warn!(error = %e, "no model lifecycle check: the price table did not load")
        })
        .ok();
    let client = ctx
        .anthropic(config, table)?
        .ok_or_else(|| Error::MissingKey {
            var: API_KEY_VAR.into(),
        })?;
    let mut request = MessagesRequest::new(args.model.clone(), max_tokens, prompt);
    if let Some(s) = &args.system {
        request = request.system(s.clone());
    }
    Ok((client, request))
}

async fn generate(args: GenerateArgs, ctx: &Ctx) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut printed_text = false;
    let mut ends_nl = false;
    let result = async {
        let (client, request) = prepare(&args, ctx)?;
        // Streamed text is echoed only without --json, so --json output is
        // always exactly one object.
        if !args.stream || args.json {
            return client.send(&request, args.stream).await?.into_checked();
        }
        let mut stream = client.stream_message(&request).await?;
        while let Some(update) = stream.next_update().await {
            if let StreamUpdate::Text(t) = update? {
                // A closed stdout (a pipe into `head`) only ends the echo.
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
                printed_text |= !t.is_empty();
                if !t.is_empty() {
                    ends_nl = t.ends_with('\n');
                }
            }
        }
        stream.finish()?.into_checked()
    }
    .await;
    if printed_text && !ends_nl {
        let _ = writeln!(out);
    }
    match result {
        Ok(r) => {
            if args.json {
                let _ = writeln!(out, "{}", answer_json(&r));
            } else if !args.stream {
                let text = r.text();
                let _ = write!(out, "{text}");
                if !text.ends_with('\n') {
                    let _ = writeln!(out);
                }
            }
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            if args.json {
                let _ = writeln!(out, "{}", error_json(&e, ctx.clock().now()));
                let _ = out.flush();
                ExitCode::FAILURE
            } else {
                let _ = out.flush();
                crate::ctx::fail("claude generate", format!("{}: {e}", e.kind()))
            }
        }
    }
}
