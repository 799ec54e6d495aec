//! [`Provider`]: a language model that fails with this crate's [`Error`]
//! (which says what to do), and the bridge to core's
//! [`swarmbus_core::llm::LanguageModel`] in both directions.
//!
//! The client, the shard pool and the fallback implement both traits; the
//! librarian takes any [`Provider`], and [`ForeignModel`] wraps any other
//! `LanguageModel` (a Claude client, a test double) as one.

use std::fmt;

use async_trait::async_trait;
use swarmbus_core::error::Retry;
use swarmbus_core::llm::{Completion, CompletionRequest, LanguageModel};

use crate::client::GeminiClient;
use crate::error::{Error, Result};
use crate::wire::GenerateContentRequest;

/// A language model of this crate: one request in, one completion out,
/// failures that classify.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The model id requests go to.
    fn model_id(&self) -> &str;

    /// Who answers, for `answered_by` (`gemini`, `shard pool`, `deepseek`).
    fn name(&self) -> String;

    /// Runs one request.
    async fn complete(&self, request: CompletionRequest) -> Result<Completion>;
}

/// Implements core's `LanguageModel` for a [`Provider`] (errors become
/// `swarmbus_core::Error::Model` with the kind in the message and the action
/// as the retry hint).
macro_rules! language_model_via_provider {
    ($ty:ty $(, $($bounds:tt)+)?) => {
        #[async_trait::async_trait]
        impl$(<$($bounds)+>)? swarmbus_core::llm::LanguageModel for $ty {
            fn model_id(&self) -> &str {
                $crate::provider::Provider::model_id(self)
            }

            async fn complete(
                &self,
                request: swarmbus_core::llm::CompletionRequest,
            ) -> swarmbus_core::error::Result<swarmbus_core::llm::Completion> {
                let model = $crate::provider::Provider::model_id(self).to_owned();
                $crate::provider::Provider::complete(self, request)
                    .await
                    .map_err(|e| e.into_core(&model))
            }
        }
    };
}
pub(crate) use language_model_via_provider;

#[async_trait]
impl Provider for GeminiClient {
    fn model_id(&self) -> &str {
        &self.config().model
    }

    fn name(&self) -> String {
        "gemini".into()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion> {
        let model = self.config().model.clone();
        let g = self
            .generate(&model, &GenerateContentRequest::from_completion(&request))
            .await?;
        Ok(g.into_completion(&model, Some(self.name())))
    }
}

language_model_via_provider!(GeminiClient);

/// Any core `LanguageModel` as a [`Provider`]. Its errors become
/// [`Error::Provider`], transient when its retry hint says a retry may help.
#[derive(Debug)]
pub struct ForeignModel<M> {
    model: M,
    name: String,
}

impl<M: LanguageModel> ForeignModel<M> {
    /// Wraps `model`, naming it `name` in answers.
    pub fn new(model: M, name: impl Into<String>) -> Self {
        Self {
            model,
            name: name.into(),
        }
    }
}

#[async_trait]
impl<M: LanguageModel + fmt::Debug> Provider for ForeignModel<M> {
    fn model_id(&self) -> &str {
        self.model.model_id()
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion> {
        self.model
            .complete(request)
            .await
            .map_err(|e| Error::Provider {
                name: self.name.clone(),
                message: e.to_string(),
                transient: !matches!(e.retry(), Retry::Never | Retry::Stop),
            })
    }
}
