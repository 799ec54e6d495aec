//! Worker liveness: the heartbeat under `worker:status:<id>` ([`Heartbeat`],
//! its timestamp format) and the progress beat ([`Progress`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::{TaskId, WorkerId};

/// What a worker reports while it works (the progress beat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Progress {
    /// The task in hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// What it is doing now.
    pub step: String,
    /// When it said so.
    pub at: DateTime<Utc>,
}

impl Progress {
    /// A progress beat made now.
    pub fn new(task: Option<TaskId>, step: impl Into<String>) -> Self {
        Self {
            task,
            step: step.into(),
            at: Utc::now(),
        }
    }
}

/// A live worker as the registry sees it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// The worker.
    pub worker: WorkerId,
    /// When it last beat.
    pub at: DateTime<Utc>,
    /// Its last progress beat, if any.
    pub progress: Option<Progress>,
}

impl Heartbeat {
    /// Builds a heartbeat view (for bus implementations).
    pub fn new(worker: WorkerId, at: DateTime<Utc>, progress: Option<Progress>) -> Self {
        Self {
            worker,
            at,
            progress,
        }
    }
}

/// Formats a heartbeat timestamp as the value of `worker:status:<id>`:
/// Unix seconds with milliseconds (`1764000000.123`), which Python reads
/// with `float()`.
pub fn format_heartbeat(at: DateTime<Utc>) -> String {
    let ms = at.timestamp_millis();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Parses a heartbeat value: Unix seconds (integer or decimal) or RFC 3339.
pub fn parse_heartbeat(key: &str, value: &str) -> Result<DateTime<Utc>> {
    if let Ok(secs) = value.trim().parse::<f64>()
        && secs.is_finite()
        && let Some(t) = DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
    {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::decode(key, format!("not a heartbeat timestamp: {e}")))
}
