//! # swarmbus-gemini
//!
//! Gemini client, multi-shard librarian pool with failover, fallback provider
//! and the archive librarian.
//!
//! # Layout
//!
//! This crate is filled by the Gemini issue: wire types, client, error
//! classification, shard pool, fallback provider, librarian and daemon.
