//! `swarm gemini generate`: one call to Gemini with `GEMINI_API_KEY`
//! (and `GEMINI_BASE_URL` when set).
//!
//! Output: the answer text; with `--json` exactly one JSON object
//! `{"text", "finish_reason", "usage": {"prompt_tokens", "output_tokens",
//! "thoughts_tokens", "cached_tokens", "total_tokens"}}` (the API's own
//! counts: `prompt_tokens` includes `cached_tokens`, `output_tokens`
//! excludes thoughts; `finish_reason` is Gemini's own word). A response the
//! token cap ended (`MAX_TOKENS`) is a success even when thinking used the
//! whole budget and no text came: exit 0, empty text. With `--stream` the
//! text is printed as it arrives and the JSON object, if asked, comes at
//! the end. On failure the exit status
//! is 1 and, with `--json`, the object is `{"error": {"kind", "http_status",
//! "message", "retry_after_s"}}`: `retry_after_s` is how long to wait before
//! trying again (a per-minute 429's retry delay, a server error's backoff,
//! or the seconds until a per-day quota resets at midnight in
//! America/Los_Angeles), `null` when waiting cannot help.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use swarmbus_gemini::decode::StreamAccumulator;
use swarmbus_gemini::wire::GenerateContentRequest;
use swarmbus_gemini::{Action, ClientConfig, Error, ErrorKind, GeminiClient, Generation};

use crate::ctx::Ctx;

/// Gemini commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum GeminiCmd {
    /// Generate an answer to a prompt (key from GEMINI_API_KEY).
    Generate(GenerateArgs),
}

/// `swarm gemini generate`.
#[derive(Debug, clap::Args)]
pub(crate) struct GenerateArgs {
    /// The model id (`gemini-3.5-flash-lite`).
    #[arg(long)]
    model: String,
    /// Print the answer as it arrives (streamGenerateContent).
    #[arg(long)]
    stream: bool,
    /// Print one JSON object with the text, finish reason and usage (at the
    /// end when streaming); failures as {"error": {...}}.
    #[arg(long)]
    json: bool,
    /// Whole-request timeout in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The prompt (several words are joined with spaces).
    #[arg(required = true, num_args = 1..)]
    prompt: Vec<String>,
}

/// Runs a Gemini command.
pub(crate) async fn run(cmd: GeminiCmd, ctx: &Ctx) -> ExitCode {
    match cmd {
        GeminiCmd::Generate(args) => generate(args, ctx).await,
    }
}

/// The CLI's error kinds: exactly the twelve the interface promises.
fn cli_kind(e: &Error) -> &'static str {
    match e.kind() {
        ErrorKind::AllShardsExhausted => "quota_exhausted",
        ErrorKind::Ledger => "transport",
        ErrorKind::Config => "invalid_request",
        ErrorKind::NotEnoughShards => "overloaded",
        other => other.as_str(),
    }
}

/// Seconds to wait before trying again, rounded up; `None` when waiting
/// cannot help (a disabled key, a request no shard could serve).
fn retry_after_s(e: &Error, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    match e.action() {
        Action::RetryAfter(d) | Action::Cool(d) => Some(d.as_secs_f64().ceil() as u64),
        Action::ExhaustUntil(t) => Some(
            (t - now)
                .to_std()
                .map_or(0, |d| d.as_secs_f64().ceil() as u64),
        ),
        _ => None,
    }
}

fn error_json(e: &Error, now: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    json!({"error": {
        "kind": cli_kind(e),
        "http_status": e.http_status(),
        "message": e.to_string(),
        "retry_after_s": retry_after_s(e, now),
    }})
}

fn answer_json(g: &Generation) -> serde_json::Value {
    json!({
        "text": g.text,
        "finish_reason": g.finish_reason.as_ref().map(|r| r.as_str().to_owned()),
        "usage": {
            "prompt_tokens": g.usage.prompt_token_count,
            "output_tokens": g.usage.candidates_token_count,
            "thoughts_tokens": g.usage.thoughts_token_count,
            "cached_tokens": g.usage.cached_content_token_count,
            "total_tokens": g.usage.total_token_count,
        }
    })
}

fn client(args: &GenerateArgs, ctx: &Ctx) -> Result<GeminiClient, Error> {
    let key = std::env::var(swarmbus_gemini::client::API_KEY_VAR)
        .ok()
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| Error::MissingKey {
            source_name: swarmbus_gemini::client::API_KEY_VAR.into(),
        })?;
    let config = ClientConfig::from_env().model(args.model.clone()).timeouts(
        Duration::from_secs(10).min(Duration::from_secs(args.timeout.max(1))),
        Duration::from_secs(args.timeout.max(1)),
    );
    let mut client =
        GeminiClient::new(secrecy::SecretString::from(key), config)?.with_clock(ctx.clock());
    // The built-in price table knows each model's lifecycle: a retired
    // model is refused before sending, naming its replacement.
    match ctx.prices() {
        Ok(table) => client = client.with_catalog(table),
        Err(e) => {
            tracing::warn!(error = %e, "no model lifecycle check: the price table did not load")
        }
    }
    Ok(client)
}

async fn generate(args: GenerateArgs, ctx: &Ctx) -> ExitCode {
    let prompt = args.prompt.join(" ");
    let request = GenerateContentRequest::user(prompt);
    let mut out = std::io::stdout().lock();
    let mut printed_text = false;
    let result = async {
        let client = client(&args, ctx)?;
        if !args.stream {
            return client.generate(&args.model, &request).await;
        }
        let mut stream = client
            .stream_generate_content(&args.model, &request)
            .await?;
        let mut acc = StreamAccumulator::new();
        while let Some(chunk) = stream.next().await {
            let added = acc.push(&chunk?)?;
            if !added.is_empty() {
                // A closed stdout (a pipe into `head`) only ends the echo.
                let _ = out.write_all(added.as_bytes());
                let _ = out.flush();
                printed_text = true;
            }
        }
        acc.finish()
    }
    .await;
    let ends_line = |out: &mut std::io::StdoutLock<'_>, text_ends_nl: bool| {
        if printed_text && !text_ends_nl {
            let _ = writeln!(out);
        }
    };
    match result {
        Ok(g) => {
            if args.stream {
                ends_line(&mut out, g.text.ends_with('\n'));
            } else if !args.json {
                let _ = write!(out, "{}", g.text);
                if !g.text.ends_with('\n') {
                    let _ = writeln!(out);
                }
            }
            if args.json {
                let _ = writeln!(out, "{}", answer_json(&g));
            }
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            ends_line(&mut out, false);
            if args.json {
                let _ = writeln!(out, "{}", error_json(&e, ctx.clock().now()));
                let _ = out.flush();
                ExitCode::FAILURE
            } else {
                let _ = out.flush();
                crate::ctx::fail("gemini generate", format!("{}: {e}", cli_kind(&e)))
            }
        }
    }
}
