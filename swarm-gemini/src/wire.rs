//! The Gemini API's JSON (v1beta): `generateContent`,
//! `streamGenerateContent?alt=sse` and `countTokens`.
//!
//! Every response field is optional or defaulted and unknown fields are
//! ignored, so a newer API version still parses. Enums the API grows over
//! time (finish and block reasons, harm categories, probabilities) are OPEN:
//! a value this version does not know parses as `Other(value)` and is kept,
//! never an error. Whether a parsed response is an answer is decided by
//! [`GenerateContentResponse::check`], not by the parser.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use swarmbus_core::llm::Usage;

use crate::error::{BlockCause, Error};

/// Declares an open enum: known values by name, anything else kept as
/// `Other(String)`; (de)serialised as the API's string.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this version does not know, kept as the API sent it.
            Other(String),
        }

        impl $name {
            /// The API's string for this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }

            /// Parses the API's string; unknown values become `Other`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

open_enum!(
    /// Why a candidate stopped (`finishReason`).
    FinishReason {
        /// Not specified.
        Unspecified => "FINISH_REASON_UNSPECIFIED",
        /// Natural stop or a stop sequence.
        Stop => "STOP",
        /// The output token limit was reached.
        MaxTokens => "MAX_TOKENS",
        /// Flagged for safety.
        Safety => "SAFETY",
        /// Flagged for recitation.
        Recitation => "RECITATION",
        /// An unsupported language.
        Language => "LANGUAGE",
        /// Some other reason.
        OtherReason => "OTHER",
        /// A forbidden term.
        Blocklist => "BLOCKLIST",
        /// Prohibited content.
        ProhibitedContent => "PROHIBITED_CONTENT",
        /// Sensitive personally identifiable information.
        Spii => "SPII",
        /// The function call the model generated is invalid.
        MalformedFunctionCall => "MALFORMED_FUNCTION_CALL",
        /// A generated image violated safety rules.
        ImageSafety => "IMAGE_SAFETY",
        /// A generated image has prohibited content.
        ImageProhibitedContent => "IMAGE_PROHIBITED_CONTENT",
        /// A generated image was flagged for recitation.
        ImageRecitation => "IMAGE_RECITATION",
        /// Image generation stopped for another reason.
        ImageOther => "IMAGE_OTHER",
        /// The model was expected to make an image and did not.
        NoImage => "NO_IMAGE",
        /// The model called a tool with tools disabled.
        UnexpectedToolCall => "UNEXPECTED_TOOL_CALL",
        /// Too many tool calls in a row.
        TooManyToolCalls => "TOO_MANY_TOOL_CALLS",
    }
);

impl FinishReason {
    /// The provider-neutral stop reason: `STOP` ends the turn, `MAX_TOKENS`
    /// is the token cap, a blocking reason is a content filter (its name
    /// kept), anything else is kept as written.
    pub fn stop_reason(&self) -> swarmbus_core::llm::StopReason {
        use swarmbus_core::llm::StopReason;
        match self {
            FinishReason::Stop => StopReason::EndTurn,
            FinishReason::MaxTokens => StopReason::MaxTokens,
            r if r.is_block() => StopReason::ContentFilter(r.as_str().to_owned()),
            r => StopReason::Other(r.as_str().to_owned()),
        }
    }

    /// Whether this reason means the content was withheld by a safety or
    /// policy filter: the same prompt on another key would be blocked too.
    pub fn is_block(&self) -> bool {
        matches!(
            self,
            FinishReason::Safety
                | FinishReason::Recitation
                | FinishReason::Language
                | FinishReason::Blocklist
                | FinishReason::ProhibitedContent
                | FinishReason::Spii
                | FinishReason::ImageSafety
                | FinishReason::ImageProhibitedContent
                | FinishReason::ImageRecitation
        )
    }
}

open_enum!(
    /// Why a prompt was blocked (`promptFeedback.blockReason`).
    BlockReason {
        /// Not specified.
        Unspecified => "BLOCK_REASON_UNSPECIFIED",
        /// Safety.
        Safety => "SAFETY",
        /// Another reason.
        OtherReason => "OTHER",
        /// A forbidden term.
        Blocklist => "BLOCKLIST",
        /// Prohibited content.
        ProhibitedContent => "PROHIBITED_CONTENT",
        /// Unsafe image generation content.
        ImageSafety => "IMAGE_SAFETY",
    }
);

open_enum!(
    /// A harm category of a safety rating or setting.
    HarmCategory {
        /// Not specified.
        Unspecified => "HARM_CATEGORY_UNSPECIFIED",
        /// Hate speech.
        HateSpeech => "HARM_CATEGORY_HATE_SPEECH",
        /// Dangerous content.
        DangerousContent => "HARM_CATEGORY_DANGEROUS_CONTENT",
        /// Harassment.
        Harassment => "HARM_CATEGORY_HARASSMENT",
        /// Sexually explicit content.
        SexuallyExplicit => "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        /// Civic integrity.
        CivicIntegrity => "HARM_CATEGORY_CIVIC_INTEGRITY",
        /// Derogatory (PaLM era).
        Derogatory => "HARM_CATEGORY_DEROGATORY",
        /// Toxicity (PaLM era).
        Toxicity => "HARM_CATEGORY_TOXICITY",
        /// Violence (PaLM era).
        Violence => "HARM_CATEGORY_VIOLENCE",
        /// Sexual (PaLM era).
        Sexual => "HARM_CATEGORY_SEXUAL",
        /// Medical (PaLM era).
        Medical => "HARM_CATEGORY_MEDICAL",
        /// Dangerous (PaLM era).
        Dangerous => "HARM_CATEGORY_DANGEROUS",
    }
);

open_enum!(
    /// How likely a piece of content is harmful.
    HarmProbability {
        /// Not specified.
        Unspecified => "HARM_PROBABILITY_UNSPECIFIED",
        /// Negligible.
        Negligible => "NEGLIGIBLE",
        /// Low.
        Low => "LOW",
        /// Medium.
        Medium => "MEDIUM",
        /// High.
        High => "HIGH",
    }
);

open_enum!(
    /// How severe the harm is (Vertex AI ratings).
    HarmSeverity {
        /// Not specified.
        Unspecified => "HARM_SEVERITY_UNSPECIFIED",
        /// Negligible.
        Negligible => "HARM_SEVERITY_NEGLIGIBLE",
        /// Low.
        Low => "HARM_SEVERITY_LOW",
        /// Medium.
        Medium => "HARM_SEVERITY_MEDIUM",
        /// High.
        High => "HARM_SEVERITY_HIGH",
    }
);

open_enum!(
    /// The blocking threshold of a safety setting.
    HarmBlockThreshold {
        /// Not specified.
        Unspecified => "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
        /// Block low probability and above.
        BlockLowAndAbove => "BLOCK_LOW_AND_ABOVE",
        /// Block medium probability and above.
        BlockMediumAndAbove => "BLOCK_MEDIUM_AND_ABOVE",
        /// Block only high probability.
        BlockOnlyHigh => "BLOCK_ONLY_HIGH",
        /// Block nothing.
        BlockNone => "BLOCK_NONE",
        /// Turn the filter off.
        Off => "OFF",
    }
);

open_enum!(
    /// The modality a token count is about.
    Modality {
        /// Not specified.
        Unspecified => "MODALITY_UNSPECIFIED",
        /// Text.
        Text => "TEXT",
        /// Image.
        Image => "IMAGE",
        /// Video.
        Video => "VIDEO",
        /// Audio.
        Audio => "AUDIO",
        /// Document (PDF).
        Document => "DOCUMENT",
    }
);

// ---------------------------------------------------------------------------
// Content

/// Inline bytes (base64) with their MIME type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Blob {
    /// The MIME type.
    #[serde(default)]
    pub mime_type: String,
    /// Base64 data.
    #[serde(default)]
    pub data: String,
}

/// One part of a message: text, a thought, inline data or a tool exchange.
/// Tool payloads are kept as JSON values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Part {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `true` when this part is the model's thought (summary), not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// An opaque signature of the thought, to send back in multi-turn use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
    /// Inline bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    /// A reference to an uploaded file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<serde_json::Value>,
    /// A function call the model asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<serde_json::Value>,
    /// A function's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<serde_json::Value>,
    /// Code the model wrote for code execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable_code: Option<serde_json::Value>,
    /// The result of running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_execution_result: Option<serde_json::Value>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Whether this part is a thought.
    pub fn is_thought(&self) -> bool {
        self.thought == Some(true)
    }
}

/// A message: a role and its parts. In a response `parts` may be missing,
/// which [`GenerateContentResponse::check`] reports as malformed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Content {
    /// `user` or `model` (absent in a system instruction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Part>>,
}

impl Content {
    /// A user message of one text part.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Some("user".into()),
            parts: Some(vec![Part::text(text)]),
        }
    }

    /// A model message of one text part (for multi-turn requests).
    pub fn model(text: impl Into<String>) -> Self {
        Self {
            role: Some("model".into()),
            parts: Some(vec![Part::text(text)]),
        }
    }

    /// A system instruction (no role).
    pub fn system(text: impl Into<String>) -> Self {
        Self {
            role: None,
            parts: Some(vec![Part::text(text)]),
        }
    }

    /// The answer text: every non-thought text part, concatenated.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .flatten()
            .filter(|p| !p.is_thought())
            .filter_map(|p| p.text.as_deref())
            .collect()
    }

    /// The thought-summary text, concatenated.
    pub fn thoughts(&self) -> String {
        self.parts
            .iter()
            .flatten()
            .filter(|p| p.is_thought())
            .filter_map(|p| p.text.as_deref())
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Request

/// How much the model may think.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ThinkingConfig {
    /// Return thought summaries as `thought: true` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
    /// Thinking tokens allowed (`0` off where the model allows, `-1` dynamic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<i32>,
    /// Thinking level (`low`, `high`) for models that take a level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<String>,
}

impl ThinkingConfig {
    /// A thinking budget in tokens.
    pub fn budget(tokens: i32) -> Self {
        Self {
            thinking_budget: Some(tokens),
            ..Self::default()
        }
    }
}

/// Generation parameters, JSON mode included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GenerationConfig {
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// `application/json` for JSON mode, `text/plain` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    /// The answer's schema in the API's OpenAPI subset (`"type": "OBJECT"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<serde_json::Value>,
    /// The answer's schema as standard JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<serde_json::Value>,
    /// How many candidates to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    /// Cap on output tokens (thinking included on thinking models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig {
    /// JSON mode with a JSON Schema (`responseJsonSchema`).
    pub fn json_schema(schema: serde_json::Value) -> Self {
        Self {
            response_mime_type: Some("application/json".into()),
            response_json_schema: Some(schema),
            ..Self::default()
        }
    }

    /// JSON mode with a schema in the API's OpenAPI subset (`responseSchema`).
    pub fn openapi_schema(schema: serde_json::Value) -> Self {
        Self {
            response_mime_type: Some("application/json".into()),
            response_schema: Some(schema),
            ..Self::default()
        }
    }
}

/// A safety filter setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SafetySetting {
    /// The category.
    pub category: HarmCategory,
    /// The threshold.
    pub threshold: HarmBlockThreshold,
}

impl SafetySetting {
    /// A setting.
    pub fn new(category: HarmCategory, threshold: HarmBlockThreshold) -> Self {
        Self {
            category,
            threshold,
        }
    }
}

/// The body of `generateContent` and `streamGenerateContent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GenerateContentRequest {
    /// The conversation.
    pub contents: Vec<Content>,
    /// The system instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Generation parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// Safety settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safety_settings: Vec<SafetySetting>,
    /// Tools (kept as JSON): `{"functionDeclarations": [...]}` entries and
    /// built-in tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// How the model may call the declared functions
    /// (`{"functionCallingConfig": {"mode": "ANY", …}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<serde_json::Value>,
    /// A cached content name (`cachedContents/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_content: Option<String>,
}

impl GenerateContentRequest {
    /// One user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            contents: vec![Content::user(text)],
            ..Self::default()
        }
    }

    /// Sets the system instruction.
    pub fn system(mut self, text: impl Into<String>) -> Self {
        self.system_instruction = Some(Content::system(text));
        self
    }

    /// Sets the generation parameters.
    pub fn config(mut self, config: GenerationConfig) -> Self {
        self.generation_config = Some(config);
        self
    }

    /// Adds a safety setting.
    pub fn safety(mut self, setting: SafetySetting) -> Self {
        self.safety_settings.push(setting);
        self
    }

    /// The Gemini request for a provider-neutral request, all of it: the
    /// system instruction, every message (assistant → `model`), tool
    /// definitions (`functionDeclarations`), tool calls and results
    /// (`functionCall` / `functionResponse`), the tool choice, JSON mode
    /// with `responseJsonSchema`, the token cap, stop sequences,
    /// temperature and thinking (`thinkingConfig`). See [`crate::convert`].
    pub fn from_completion(request: &swarmbus_core::llm::CompletionRequest) -> Self {
        crate::convert::to_gemini(request)
    }

    /// The provider-neutral request this Gemini request stands for (what
    /// the pool hands a fallback model). See [`crate::convert`].
    pub fn to_completion_request(&self) -> swarmbus_core::llm::CompletionRequest {
        crate::convert::from_gemini(self)
    }

    /// Every text of the request (a plain-text view): the system
    /// instruction and each message as (role, text).
    pub fn texts(&self) -> (Option<String>, Vec<(String, String)>) {
        let system = self.system_instruction.as_ref().map(Content::text);
        let messages = self
            .contents
            .iter()
            .map(|c| (c.role.clone().unwrap_or_else(|| "user".into()), c.text()))
            .collect();
        (system, messages)
    }
}

/// The body of `countTokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CountTokensRequest {
    /// The contents to count.
    pub contents: Vec<Content>,
}

impl CountTokensRequest {
    /// Counts these contents.
    pub fn new(contents: Vec<Content>) -> Self {
        Self { contents }
    }
}

/// The answer of `countTokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CountTokensResponse {
    /// Tokens of the prompt.
    #[serde(default)]
    pub total_tokens: u64,
    /// Tokens in cached content.
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Per modality.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
    /// Per modality, of the cached part.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub cache_tokens_details: Vec<ModalityTokenCount>,
}

// ---------------------------------------------------------------------------
// Response

/// One safety rating. Every field is optional: the API has sent empty
/// objects here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SafetyRating {
    /// The category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<HarmCategory>,
    /// The probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<HarmProbability>,
    /// Whether this rating blocked the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<bool>,
    /// Probability score (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability_score: Option<f64>,
    /// Severity (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<HarmSeverity>,
    /// Severity score (Vertex AI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_score: Option<f64>,
}

/// Feedback on the prompt: set when the prompt itself was blocked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PromptFeedback {
    /// Why the prompt was blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<BlockReason>,
    /// A human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason_message: Option<String>,
    /// Ratings of the prompt.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub safety_ratings: Vec<SafetyRating>,
}

/// Tokens of one modality.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModalityTokenCount {
    /// The modality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modality: Option<Modality>,
    /// Tokens.
    #[serde(default)]
    pub token_count: u64,
}

/// Token counts of a call, every field of the API's `usageMetadata`.
///
/// `prompt_token_count` INCLUDES `cached_content_token_count`;
/// `total_token_count` = prompt + candidates + thoughts + tool-use prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UsageMetadata {
    /// Prompt tokens, cached ones included.
    #[serde(default)]
    pub prompt_token_count: u64,
    /// Prompt tokens served from the (implicit or explicit) cache.
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Answer tokens (thoughts excluded).
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Tokens of tool-use prompts.
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
    /// Thinking tokens.
    #[serde(default)]
    pub thoughts_token_count: u64,
    /// Total.
    #[serde(default)]
    pub total_token_count: u64,
    /// Prompt tokens per modality.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
    /// Cached tokens per modality.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub cache_tokens_details: Vec<ModalityTokenCount>,
    /// Answer tokens per modality.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub candidates_tokens_details: Vec<ModalityTokenCount>,
    /// Tool-use prompt tokens per modality.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub tool_use_prompt_tokens_details: Vec<ModalityTokenCount>,
    /// Vertex AI traffic type (`ON_DEMAND`, `PROVISIONED_THROUGHPUT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_type: Option<String>,
}

impl UsageMetadata {
    /// The provider-neutral usage: fresh input = prompt − cached (the cached
    /// tokens are part of the prompt count) + tool-use prompt; cache reads =
    /// cached; output = candidates + thoughts (thinking is billed as output);
    /// thinking = thoughts.
    pub fn usage(&self) -> Usage {
        let fresh = self
            .prompt_token_count
            .saturating_sub(self.cached_content_token_count)
            .saturating_add(self.tool_use_prompt_token_count);
        Usage::new(
            fresh,
            self.candidates_token_count
                .saturating_add(self.thoughts_token_count),
        )
        .with_cache_read(self.cached_content_token_count)
        .with_thinking(self.thoughts_token_count)
    }
}

/// One answer candidate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Candidate {
    /// The answer (may be missing or without parts: see
    /// [`GenerateContentResponse::check`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Why generation stopped (absent on non-final stream chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// A human-readable explanation of the finish reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_message: Option<String>,
    /// Safety ratings.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub safety_ratings: Vec<SafetyRating>,
    /// Citations (kept as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citation_metadata: Option<serde_json::Value>,
    /// Grounding sources (kept as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grounding_metadata: Option<serde_json::Value>,
    /// URL context retrieval (kept as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_context_metadata: Option<serde_json::Value>,
    /// Tokens of this candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_count: Option<u64>,
    /// Average log probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_logprobs: Option<f64>,
    /// Index among candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

/// The answer of `generateContent`, and one chunk of a stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GenerateContentResponse {
    /// Candidates (absent when the prompt was blocked, and in a usage-only
    /// last stream chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<Candidate>>,
    /// Feedback on the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    /// The model version that answered (`gemini-2.5-flash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The response id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
}

impl GenerateContentResponse {
    /// The first candidate, if any.
    pub fn candidate(&self) -> Option<&Candidate> {
        self.candidates.as_ref().and_then(|c| c.first())
    }

    /// The answer text of the first candidate (thoughts excluded); empty
    /// when there is none.
    pub fn text(&self) -> String {
        self.candidate()
            .and_then(|c| c.content.as_ref())
            .map(Content::text)
            .unwrap_or_default()
    }

    /// The thought summaries of the first candidate.
    pub fn thoughts(&self) -> String {
        self.candidate()
            .and_then(|c| c.content.as_ref())
            .map(Content::thoughts)
            .unwrap_or_default()
    }

    /// The first candidate's finish reason.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.candidate().and_then(|c| c.finish_reason.as_ref())
    }

    /// The provider-neutral usage (zero when the response has none).
    pub fn usage(&self) -> Usage {
        self.usage_metadata
            .as_ref()
            .map(UsageMetadata::usage)
            .unwrap_or_default()
    }

    /// Whether this is a usage-only chunk (no candidates, no feedback): the
    /// last chunk of some streams.
    pub fn is_usage_only(&self) -> bool {
        self.candidates.as_ref().is_none_or(Vec::is_empty)
            && self.prompt_feedback.is_none()
            && self.usage_metadata.is_some()
    }

    /// Decides whether this response is an answer, never guessing:
    ///
    /// - a `promptFeedback.blockReason` → [`Error::Blocked`] (the prompt);
    /// - a blocking `finishReason` (SAFETY, PROHIBITED_CONTENT, …) →
    ///   [`Error::Blocked`], even when some text came with it;
    /// - no candidates, a candidate without content, content without parts
    ///   (`content: {}`), or a body that is not a response at all →
    ///   [`Error::MalformedResponse`];
    /// - except that a candidate whose `finishReason` is `MAX_TOKENS` is an
    ///   answer even with no content or no parts (thinking used the whole
    ///   output budget): a success with an empty text.
    ///
    /// An unknown finish reason is not an error: the text is the answer and
    /// the reason is kept as [`FinishReason::Other`].
    pub fn check(&self) -> Result<(), Error> {
        if let Some(feedback) = &self.prompt_feedback
            && let Some(reason) = &feedback.block_reason
        {
            return Err(Error::Blocked {
                cause: BlockCause::Prompt(reason.clone()),
                message: feedback.block_reason_message.clone(),
            });
        }
        let Some(candidate) = self.candidate() else {
            let detail = self
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason_message.clone())
                .map(|m| format!(" (prompt feedback: {m})"))
                .unwrap_or_default();
            let what = if self.candidates.is_some() {
                "empty candidates and no block reason"
            } else if self.prompt_feedback.is_some() || self.usage_metadata.is_some() {
                "no candidates and no block reason"
            } else {
                "the body is not a generateContent response"
            };
            return Err(Error::MalformedResponse {
                reason: format!("{what}{detail}"),
            });
        };
        if let Some(reason) = &candidate.finish_reason
            && reason.is_block()
        {
            return Err(Error::Blocked {
                cause: BlockCause::Candidate(reason.clone()),
                message: candidate.finish_message.clone(),
            });
        }
        let finish = || {
            let mut s = String::new();
            if let Some(r) = &candidate.finish_reason {
                s.push_str(&format!(" (finishReason {r}"));
                if let Some(m) = &candidate.finish_message {
                    s.push_str(&format!(": {m}"));
                }
                s.push(')');
            }
            s
        };
        // The token cap can end a candidate before any part came (thinking
        // used the whole budget): a success with that finish reason and no
        // text, never a malformed response.
        let capped = candidate.finish_reason == Some(FinishReason::MaxTokens);
        let Some(content) = &candidate.content else {
            if capped {
                return Ok(());
            }
            return Err(Error::MalformedResponse {
                reason: format!("candidate without content{}", finish()),
            });
        };
        match &content.parts {
            _ if capped => Ok(()),
            None => Err(Error::MalformedResponse {
                reason: format!("content without parts{}", finish()),
            }),
            Some(parts) if parts.is_empty() => Err(Error::MalformedResponse {
                reason: format!("content with an empty parts list{}", finish()),
            }),
            Some(_) => Ok(()),
        }
    }
}

/// Deserialises a list, skipping elements that do not parse and treating a
/// non-list as empty: one odd rating or token-detail entry must not cost the
/// whole answer.
fn lenient_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_enum_values_are_kept() {
        let r: FinishReason = serde_json::from_str("\"FAKE_NEW_FINISH_REASON\"").unwrap();
        assert_eq!(r, FinishReason::Other("FAKE_NEW_FINISH_REASON".into()));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            "\"FAKE_NEW_FINISH_REASON\""
        );
        assert_eq!(FinishReason::parse("STOP"), FinishReason::Stop);
    }

    #[test]
    fn cached_tokens_are_split_out_of_the_prompt() {
        let u = UsageMetadata {
            prompt_token_count: 12013,
            cached_content_token_count: 11243,
            candidates_token_count: 15,
            thoughts_token_count: 73,
            total_token_count: 12101,
            ..UsageMetadata::default()
        };
        let usage = u.usage();
        assert_eq!(usage.input_tokens, 770);
        assert_eq!(usage.cache_read_tokens, 11243);
        assert_eq!(usage.output_tokens, 88);
        assert_eq!(usage.thinking_tokens, 73);
        assert_eq!(usage.total_tokens(), 12101);
    }

    #[test]
    fn json_mode_request_serialises_the_schema() {
        let req = GenerateContentRequest::user("hi")
            .system("be brief")
            .config(GenerationConfig::json_schema(
                serde_json::json!({"type": "object"}),
            ));
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["contents"][0]["role"], "user");
        assert_eq!(v["systemInstruction"]["parts"][0]["text"], "be brief");
        assert_eq!(
            v["generationConfig"]["responseMimeType"],
            "application/json"
        );
        assert_eq!(
            v["generationConfig"]["responseJsonSchema"]["type"],
            "object"
        );
        assert!(v.get("safetySettings").is_none());
    }
}
