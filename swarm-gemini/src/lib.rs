//! # swarmbus-gemini
//!
//! Gemini client, multi-shard librarian pool with failover, fallback provider
//! and the archive librarian.
//!
//! # Layout
//!
//! - [`wire`]: the API's JSON (`generateContent`, `streamGenerateContent`, `countTokens`), open enums.
//! - [`decode`]: unary and SSE decoders, the stream accumulator, [`Generation`].
//! - [`client`]: [`GeminiClient`], one key over reqwest.
//! - [`error`]: [`Error`], its [`Action`] and [`ErrorKind`]; the classification table.
//! - [`clock`]: injectable time ([`SystemClock`], [`ManualClock`]).
#![forbid(unsafe_code)]

pub mod client;
pub mod clock;
pub mod daemon;
pub mod decode;
pub mod error;
pub mod fallback;
pub mod librarian;
pub mod pool;
pub mod probe;
pub mod provider;
pub mod wire;

pub use client::{ClientConfig, GeminiClient};
pub use clock::{Clock, ManualClock, SystemClock};
pub use daemon::{DaemonStats, LibrarianDaemon};
pub use decode::Generation;
pub use error::{Action, Error, ErrorKind, Result};
pub use fallback::{FallbackConfig, OpenAiCompatible};
pub use librarian::{AnswerSource, Librarian, LibrarianAnswer, LibrarianConfig};
pub use pool::{PoolAnswer, PoolConfig, ServedBy, ShardConfig, ShardPool};
pub use probe::{ShardProbe, ShardTestReport};
pub use provider::{ForeignModel, Provider};
