//! Questions to the librarian and its answers: [`ArchiveQuery`] under
//! `query:archive:<uuid>`, [`ArchiveResponse`] under `response:archive:<uuid>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::finding::FindingFilter;
use crate::keys::{FindingId, QueryId};

/// A question to the librarian, the JSON value of `query:archive:<uuid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArchiveQuery {
    /// Unique id; the response is `response:archive:<id>`.
    pub id: QueryId,
    /// The question.
    pub question: String,
    /// Which findings may be used.
    #[serde(default)]
    pub filter: FindingFilter,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_by: Option<String>,
    /// When.
    pub asked_at: DateTime<Utc>,
}

impl ArchiveQuery {
    /// A question over the findings `filter` selects.
    pub fn new(question: impl Into<String>, filter: FindingFilter) -> Self {
        Self {
            id: QueryId::random(),
            question: question.into(),
            filter,
            asked_by: None,
            asked_at: Utc::now(),
        }
    }

    /// Records who asked.
    pub fn asked_by(mut self, who: impl Into<String>) -> Self {
        self.asked_by = Some(who.into());
        self
    }
}

/// How an archive query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseStatus {
    /// Answered, with citations.
    Ok,
    /// Failed; `error` says why.
    Error,
}

/// The librarian's answer, the JSON value of `response:archive:<uuid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArchiveResponse {
    /// The query's id.
    pub id: QueryId,
    /// Answered or failed.
    pub status: ResponseStatus,
    /// The answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The findings the answer cites; every one exists.
    #[serde(default)]
    pub citations: Vec<FindingId>,
    /// Why it failed (kind and message), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResponseError>,
    /// Which provider or shard answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// When.
    pub answered_at: DateTime<Utc>,
}

/// Why an archive query failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseError {
    /// A stable machine-readable kind (`quota_exhausted`, `malformed_response`).
    pub kind: String,
    /// A human-readable message, without secrets.
    pub message: String,
}

impl ArchiveResponse {
    /// A successful answer.
    pub fn answered(id: QueryId, answer: impl Into<String>, citations: Vec<FindingId>) -> Self {
        Self {
            id,
            status: ResponseStatus::Ok,
            answer: Some(answer.into()),
            citations,
            error: None,
            answered_by: None,
            answered_at: Utc::now(),
        }
    }

    /// A failure response (never silence).
    pub fn failed(id: QueryId, kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            id,
            status: ResponseStatus::Error,
            answer: None,
            citations: Vec::new(),
            error: Some(ResponseError {
                kind: kind.into(),
                message: message.into(),
            }),
            answered_by: None,
            answered_at: Utc::now(),
        }
    }

    /// Records who answered.
    pub fn answered_by(mut self, who: impl Into<String>) -> Self {
        self.answered_by = Some(who.into());
        self
    }
}
