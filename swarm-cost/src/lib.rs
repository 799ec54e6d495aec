//! # swarmbus-cost
//!
//! Prices every model call of a swarm and reports spend per tier.
//!
//! # Layout
//!
//! This crate is filled by the cost issue: price table (data, effective-dated),
//! usage adapters per provider, exact integer money, ledger, budgets, reports.
