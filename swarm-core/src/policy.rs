//! The delegation target, shared by the runtime's delegation statistics
//! (`swarmbus-agents`) and the cost report (`swarmbus-cost`), which meet
//! only through core. The policy itself lives in `swarmbus-agents`.

/// The brief's target share of work on the worker tier, in tenths of a
/// percent (90 %).
pub const WORKER_TARGET_PERMILLE: u32 = 900;
