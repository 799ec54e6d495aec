//! # swarmbus-redis
//!
//! The Redis bus: every `swarmbus-core` trait over a real Redis.
//!
//! # Layout
//!
//! This crate is filled by the Redis issue: `RedisBus` on a single node,
//! with ACL/TLS, and on a Redis Cluster.
