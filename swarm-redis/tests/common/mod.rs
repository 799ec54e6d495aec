//! Test harness: the crate's own `testing` module, plus what only these
//! test binaries need.

#![allow(dead_code, unreachable_pub, unused_imports, clippy::expect_used)]

use std::path::PathBuf;

pub use swarmbus_redis::testing::*;

/// The path of this test executable, to run it again as a child process.
pub fn this_executable() -> PathBuf {
    std::env::current_exe().expect("current exe")
}
