//! Shared helpers of the runnable examples (see `examples/`).
