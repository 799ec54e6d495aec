//! Usage adapters: each provider's own usage JSON into the buckets of
//! [`Usage`] (fresh input, cache read, cache write 5 min, cache write 1 h,
//! output with thinking, and thinking as an informational subset).
//!
//! Each adapter takes either the whole response (it finds `usage` or
//! `usageMetadata`) or the usage object itself. Providers count differently,
//! and getting that wrong is the classic cost-tracker bug:
//!
//! - **Anthropic** `input_tokens` EXCLUDES cache tokens; cache writes are
//!   `cache_creation_input_tokens`, split by TTL in
//!   `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`
//!   (without the split every write is a 5-minute one, the default TTL);
//!   cache reads are `cache_read_input_tokens`.
//! - **Gemini** `promptTokenCount` INCLUDES `cachedContentTokenCount`;
//!   `toolUsePromptTokenCount` is more input; `thoughtsTokenCount` is billed as
//!   output and is not in `candidatesTokenCount`.
//! - **OpenAI-compatible** `prompt_tokens` INCLUDES the cached part: DeepSeek's
//!   `prompt_cache_hit_tokens` (with `prompt_cache_miss_tokens` the rest) or
//!   OpenAI's `prompt_tokens_details.cached_tokens`; reasoning tokens are in
//!   `completion_tokens` (`completion_tokens_details.reasoning_tokens`).
//!
//! Counts that contradict each other are an error, never silently clamped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use swarmbus_core::llm::Usage;

use crate::error::{CostError, Result};

/// A provider whose usage JSON this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Provider {
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini API (`usageMetadata`).
    Gemini,
    /// OpenAI-compatible chat completions (OpenAI, DeepSeek).
    OpenAiCompatible,
}

impl Provider {
    /// Reads this provider's usage JSON.
    pub fn usage(self, json: &Value) -> Result<Usage> {
        match self {
            Provider::Anthropic => anthropic(json),
            Provider::Gemini => gemini(json),
            Provider::OpenAiCompatible => openai_compatible(json),
        }
    }

    /// The name used in errors.
    pub const fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => ANTHROPIC,
            Provider::Gemini => GEMINI,
            Provider::OpenAiCompatible => OPENAI,
        }
    }
}

const ANTHROPIC: &str = "anthropic";
const GEMINI: &str = "gemini";
const OPENAI: &str = "openai-compatible";

/// Reads an Anthropic Messages API `usage` object (or a message holding one).
pub fn anthropic(json: &Value) -> Result<Usage> {
    let u = usage_object(
        json,
        ANTHROPIC,
        "usage",
        &["input_tokens", "output_tokens", "cache_read_input_tokens"],
    )?;
    let input = required(u, ANTHROPIC, "input_tokens")?;
    let output = required(u, ANTHROPIC, "output_tokens")?;
    let read = count(u, ANTHROPIC, "cache_read_input_tokens")?.unwrap_or(0);
    let creation = count(u, ANTHROPIC, "cache_creation_input_tokens")?;
    let (five_minutes, one_hour) = match u.get("cache_creation") {
        None | Some(Value::Null) => (creation.unwrap_or(0), 0),
        Some(Value::Object(split)) => {
            let five = count(split, ANTHROPIC, "ephemeral_5m_input_tokens")?.unwrap_or(0);
            let hour = count(split, ANTHROPIC, "ephemeral_1h_input_tokens")?.unwrap_or(0);
            let sum = five.checked_add(hour).ok_or_else(|| overflow(ANTHROPIC))?;
            if let Some(total) = creation
                && total != sum
            {
                return Err(CostError::usage(
                    ANTHROPIC,
                    format!(
                        "cache_creation_input_tokens is {total} but its 5m and 1h split adds up to {sum}"
                    ),
                ));
            }
            (five, hour)
        }
        Some(_) => {
            return Err(CostError::usage(
                ANTHROPIC,
                "cache_creation is not an object",
            ));
        }
    };
    Ok(Usage::new(input, output)
        .with_cache_read(read)
        .with_cache_write(five_minutes, one_hour))
}

/// Reads a Gemini `usageMetadata` object (or a response holding one).
///
/// Audio input is refused: Gemini prices it above text and there is no
/// bucket for it, so pricing it as text would be wrong.
pub fn gemini(json: &Value) -> Result<Usage> {
    let u = usage_object(
        json,
        GEMINI,
        "usageMetadata",
        &[
            "promptTokenCount",
            "candidatesTokenCount",
            "totalTokenCount",
        ],
    )?;
    let prompt = count(u, GEMINI, "promptTokenCount")?.unwrap_or(0);
    let cached = count(u, GEMINI, "cachedContentTokenCount")?.unwrap_or(0);
    let tool_use = count(u, GEMINI, "toolUsePromptTokenCount")?.unwrap_or(0);
    let candidates = count(u, GEMINI, "candidatesTokenCount")?.unwrap_or(0);
    let thoughts = count(u, GEMINI, "thoughtsTokenCount")?.unwrap_or(0);
    if cached > prompt {
        return Err(CostError::usage(
            GEMINI,
            format!(
                "cachedContentTokenCount {cached} is more than promptTokenCount {prompt}, which includes it"
            ),
        ));
    }
    for details in [
        "promptTokensDetails",
        "cacheTokensDetails",
        "toolUsePromptTokensDetails",
    ] {
        refuse_audio(u, details)?;
    }
    let fresh = (prompt - cached)
        .checked_add(tool_use)
        .ok_or_else(|| overflow(GEMINI))?;
    let output = candidates
        .checked_add(thoughts)
        .ok_or_else(|| overflow(GEMINI))?;
    Ok(Usage::new(fresh, output)
        .with_cache_read(cached)
        .with_thinking(thoughts))
}

/// Reads an OpenAI-compatible `usage` object (or a response holding one):
/// OpenAI's and DeepSeek's.
pub fn openai_compatible(json: &Value) -> Result<Usage> {
    let u = usage_object(
        json,
        OPENAI,
        "usage",
        &["prompt_tokens", "completion_tokens", "total_tokens"],
    )?;
    let prompt = required(u, OPENAI, "prompt_tokens")?;
    let completion = required(u, OPENAI, "completion_tokens")?;
    let hit = count(u, OPENAI, "prompt_cache_hit_tokens")?;
    let miss = count(u, OPENAI, "prompt_cache_miss_tokens")?;
    let openai_cached = match u.get("prompt_tokens_details") {
        Some(Value::Object(details)) => count(details, OPENAI, "cached_tokens")?,
        _ => None,
    };
    let reasoning = match u.get("completion_tokens_details") {
        Some(Value::Object(details)) => count(details, OPENAI, "reasoning_tokens")?.unwrap_or(0),
        _ => 0,
    };
    if let (Some(hit), Some(miss)) = (hit, miss)
        && hit.checked_add(miss) != Some(prompt)
    {
        return Err(CostError::usage(
            OPENAI,
            format!(
                "prompt_cache_hit_tokens {hit} + prompt_cache_miss_tokens {miss} is not prompt_tokens {prompt}"
            ),
        ));
    }
    let cached = hit.or(openai_cached).unwrap_or(0);
    if cached > prompt {
        return Err(CostError::usage(
            OPENAI,
            format!(
                "{cached} cached tokens is more than prompt_tokens {prompt}, which includes them"
            ),
        ));
    }
    if reasoning > completion {
        return Err(CostError::usage(
            OPENAI,
            format!(
                "reasoning_tokens {reasoning} is more than completion_tokens {completion}, which includes them"
            ),
        ));
    }
    Ok(Usage::new(prompt - cached, completion)
        .with_cache_read(cached)
        .with_thinking(reasoning))
}

/// The usage object: `json[key]` when present, else `json` itself when it
/// has one of the provider's usage fields.
fn usage_object<'a>(
    json: &'a Value,
    provider: &'static str,
    key: &str,
    fields: &[&str],
) -> Result<&'a Map<String, Value>> {
    let Value::Object(object) = json else {
        return Err(CostError::usage(provider, "expected a JSON object"));
    };
    match object.get(key) {
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(CostError::usage(
            provider,
            format!("{key} is not an object"),
        )),
        None if fields.iter().any(|f| object.contains_key(*f)) => Ok(object),
        None => Err(CostError::usage(
            provider,
            format!("no {key} object and no usage fields"),
        )),
    }
}

/// A count: absent or null is `None`, otherwise a non-negative integer.
fn count(object: &Map<String, Value>, provider: &'static str, field: &str) -> Result<Option<u64>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            CostError::usage(
                provider,
                format!("{field} is not a non-negative integer: {value}"),
            )
        }),
    }
}

fn required(object: &Map<String, Value>, provider: &'static str, field: &str) -> Result<u64> {
    count(object, provider, field)?
        .ok_or_else(|| CostError::usage(provider, format!("{field} is missing")))
}

fn overflow(provider: &'static str) -> CostError {
    CostError::usage(provider, "token counts overflow")
}

/// Refuses a Gemini details list that counts audio tokens.
fn refuse_audio(usage: &Map<String, Value>, field: &str) -> Result<()> {
    let Some(Value::Array(entries)) = usage.get(field) else {
        return Ok(());
    };
    for entry in entries {
        let audio = entry.get("modality").and_then(Value::as_str) == Some("AUDIO");
        let tokens = entry.get("tokenCount").and_then(Value::as_u64).unwrap_or(0);
        if audio && tokens > 0 {
            return Err(CostError::usage(
                GEMINI,
                format!(
                    "{field} counts {tokens} AUDIO tokens, which Gemini prices apart from text; no bucket prices them"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn anthropic_input_excludes_cache_tokens() {
        let u = anthropic(&json!({
            "input_tokens": 50,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 2000,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
            "output_tokens": 7
        }))
        .unwrap();
        assert_eq!(
            u,
            Usage::new(50, 7)
                .with_cache_read(2000)
                .with_cache_write(100, 200)
        );
    }

    #[test]
    fn anthropic_without_split_writes_for_five_minutes() {
        let u = anthropic(&json!({"usage": {
            "input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": null
        }}))
        .unwrap();
        assert_eq!(u, Usage::new(1, 2).with_cache_write(30, 0));
    }

    #[test]
    fn anthropic_split_must_add_up() {
        let err = anthropic(&json!({
            "input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 10}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("adds up to 20"), "{err}");
    }

    #[test]
    fn negative_or_fractional_counts_are_refused() {
        assert!(anthropic(&json!({"input_tokens": -1, "output_tokens": 2})).is_err());
        assert!(openai_compatible(&json!({"prompt_tokens": 1.5, "completion_tokens": 2})).is_err());
        assert!(gemini(&json!({"candidates": []})).is_err());
    }

    #[test]
    fn gemini_refuses_more_cache_than_prompt() {
        assert!(gemini(&json!({"promptTokenCount": 5, "cachedContentTokenCount": 6})).is_err());
    }

    #[test]
    fn gemini_refuses_audio_input() {
        let err = gemini(&json!({"promptTokenCount": 5, "promptTokensDetails": [
            {"modality": "AUDIO", "tokenCount": 5}]}))
        .unwrap_err();
        assert!(err.to_string().contains("AUDIO"), "{err}");
    }

    #[test]
    fn openai_cached_tokens_are_part_of_the_prompt() {
        let u = openai_compatible(&json!({
            "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920},
            "completion_tokens_details": {"reasoning_tokens": 200}
        }))
        .unwrap();
        assert_eq!(
            u,
            Usage::new(86, 300).with_cache_read(1920).with_thinking(200)
        );
    }

    #[test]
    fn deepseek_hit_and_miss_must_add_up() {
        assert!(
            openai_compatible(&json!({
                "prompt_tokens": 10, "completion_tokens": 1,
                "prompt_cache_hit_tokens": 4, "prompt_cache_miss_tokens": 5
            }))
            .is_err()
        );
    }
}
