//! What could not be read.

/// A payload or file that is not what Claude Code writes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not JSON of the expected shape (do not retry: the input
    /// itself is wrong).
    #[error("{what} is not valid JSON: {reason}")]
    Json {
        /// What was being read (`hook payload`, `OTLP logs body`).
        what: &'static str,
        /// What the decoder said.
        reason: String,
    },
}
