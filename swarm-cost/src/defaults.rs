//! The default model of each role, as constants other crates and the CLI
//! share. They are today's models (see `data/prices.toml` for their prices
//! and lifecycle); the tier NAMES stay the brief's `sonnet`, `haiku` and
//! `gemini` (see [`crate::Tiers`]).

/// The coordinator's model: Claude Sonnet 5.5 (tier `sonnet`).
pub const COORDINATOR_MODEL: &str = "claude-sonnet-5-5";

/// The workers' model: Claude Haiku 5.5 (tier `haiku`).
pub const WORKER_MODEL: &str = "claude-haiku-5-5";

/// The librarians' model: Gemini 3.5 Flash-Lite, the model Google names as
/// `gemini-2.5-flash`'s replacement (tier `gemini`, billed on the free tier).
pub const LIBRARIAN_MODEL: &str = "gemini-3.5-flash-lite";

/// The fallback model: DeepSeek's current chat model, `deepseek-flash`
/// (DeepSeek-V4.1-Flash, OpenAI-compatible API).
pub const FALLBACK_MODEL: &str = "deepseek-flash";

/// The model `gemini-2.5-flash` (the brief's librarian) is replaced by.
pub const GEMINI_2_5_FLASH_REPLACEMENT: &str = LIBRARIAN_MODEL;
