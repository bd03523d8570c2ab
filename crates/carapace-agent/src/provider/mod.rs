//! Model providers behind one narrow trait: send a [`ModelRequest`], get a stream of
//! [`ModelEvent`]s back. The loop never knows which wire format it is talking; streamed and
//! non-streamed answers produce the same events, and [`collect`] folds them into one
//! [`Completion`].
//!
//! Two wire formats: OpenAI Chat Completions (`openai.rs`: OpenAI, OpenRouter, vLLM, llama.cpp,
//! Ollama's `/v1`…) and the Anthropic Messages API (`anthropic.rs`). Both are small hand-written
//! clients over reqwest (rustls). Typed client crates exist (async-openai, several Anthropic
//! ones), but they deserialize into the official schema, and the servers carapace must talk to
//! deviate from it: llama.cpp sends `"role": null` and repeats `id` and `name` in every
//! tool-call delta, Ollama omits `index`, vLLM adds fields, proxies drop `usage`. A strict
//! typed client fails on exactly those; reading `serde_json::Value` with defaults does not.

mod anthropic;
mod fuzz;
mod http;
mod openai;
mod sse;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use carapace_policy::ErrorCode;
use carapace_policy::models::{ModelApi, ModelDefinition, ProviderConfig};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::message::{Message, ToolCallReq, ToolChoice, ToolDef, Usage};

pub use anthropic::AnthropicProvider;
#[doc(hidden)]
pub use fuzz::fuzz_model_stream;
pub use http::HttpSettings;
pub use openai::OpenAiProvider;

/// One call to a model.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    /// The model id on the wire.
    pub model: String,
    /// System prompt.
    pub system: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools offered (empty: none).
    pub tools: Vec<ToolDef>,
    /// Tool choice for this call.
    pub tool_choice: ToolChoice,
    /// Output-token limit.
    pub max_tokens: u32,
    /// Ask for a streamed answer.
    pub stream: bool,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A final answer.
    Stop,
    /// It wants tool calls run.
    ToolCalls,
    /// It hit the output-token limit.
    Length,
    /// Anything else the provider said.
    Other,
}

/// What a provider streams back.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelEvent {
    /// More answer text.
    TextDelta(String),
    /// A tool call starts (`index` orders parallel calls).
    ToolCallStart {
        /// Position among this answer's calls.
        index: usize,
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// More of a tool call's JSON arguments.
    ToolCallDelta {
        /// Position among this answer's calls.
        index: usize,
        /// The next piece of the JSON text.
        arguments: String,
    },
    /// Token counts (may come more than once; later values win per field).
    Usage {
        /// Input tokens, if reported here.
        input: Option<u64>,
        /// Output tokens, if reported here.
        output: Option<u64>,
    },
    /// The answer is complete.
    Finish(FinishReason),
}

/// A failed model call, classified for retries and fallbacks. Messages never contain the API
/// key: providers redact it from anything the upstream echoes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an HTTP error status.
    #[error("{provider} answered HTTP {status}: {message}")]
    Http {
        /// Provider id.
        provider: String,
        /// HTTP status.
        status: u16,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
        /// The provider's own message (trimmed).
        message: String,
    },
    /// Connecting, sending or receiving failed (refused, reset, DNS, TLS, timeout).
    #[error("{provider} could not be reached: {message}")]
    Transport {
        /// Provider id.
        provider: String,
        /// What failed.
        message: String,
    },
    /// The answer is not the provider's API (bad JSON, a stream that ends early).
    #[error("{provider} sent an unusable answer: {message}")]
    Protocol {
        /// Provider id.
        provider: String,
        /// What was wrong.
        message: String,
        /// True when the answer broke off (worth a retry); false when it is malformed.
        truncated: bool,
    },
    /// The provider or model cannot be used as configured (unset key…).
    #[error("{message}")]
    NotConfigured {
        /// What is missing.
        message: String,
    },
}

impl ProviderError {
    /// The code of the one table.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProviderError::Http { status, .. } => match status {
                401 | 403 => ErrorCode::ModelUnauthorized,
                429 => ErrorCode::ModelRateLimited,
                408 | 500..=599 => ErrorCode::ModelUnavailable,
                _ => ErrorCode::ModelRejected,
            },
            ProviderError::Transport { .. } => ErrorCode::ModelUnavailable,
            ProviderError::Protocol {
                truncated: true, ..
            } => ErrorCode::ModelUnavailable,
            ProviderError::Protocol { .. } => ErrorCode::ModelRejected,
            ProviderError::NotConfigured { .. } => ErrorCode::ModelNotConfigured,
        }
    }

    /// Worth retrying the same model (429, 5xx, 408, transport failures, broken streams).
    pub fn retryable(&self) -> bool {
        matches!(
            self.code(),
            ErrorCode::ModelRateLimited | ErrorCode::ModelUnavailable
        )
    }

    /// The upstream status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The upstream `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What the user can do.
    pub fn hint(&self) -> String {
        match self.code() {
            ErrorCode::ModelUnauthorized => {
                "check the provider's apiKey (models.providers.<id>.apiKey) and that the variable it references is set".into()
            }
            ErrorCode::ModelRateLimited => {
                "the provider is rate-limiting this key; wait, or configure a fallback model (agents.defaults.model.fallbacks)".into()
            }
            ErrorCode::ModelUnavailable => {
                "the provider is down or unreachable; check baseUrl, or configure a fallback model".into()
            }
            ErrorCode::ModelNotConfigured => {
                "configure the provider in models.providers and set the variables its apiKey references".into()
            }
            _ => "the provider refused the request; its message says why (model id, context length, image input)".into(),
        }
    }
}

/// The event stream of one call.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ProviderError>> + Send>>;

/// A future returned by [`Provider::send`].
pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<EventStream, ProviderError>> + Send + 'a>>;

/// A model provider: one wire format, one endpoint, one key.
pub trait Provider: Send + Sync {
    /// Provider id (for records and messages).
    fn id(&self) -> &str;
    /// Sends the request. The future resolves once the provider answered with a success status
    /// (errors before that, e.g. HTTP 429, resolve it with `Err`); the stream then yields the
    /// answer.
    fn send<'a>(&'a self, req: &'a ModelRequest) -> SendFuture<'a>;
}

/// Builds the provider for one configured model.
pub fn provider_for(
    p: &ProviderConfig,
    m: &ModelDefinition,
    http: &HttpSettings,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let client = http::client(http, p)?;
    Ok(match m.api.unwrap_or(p.api) {
        ModelApi::OpenAiCompletions => Arc::new(OpenAiProvider::new(p, m, client)),
        ModelApi::AnthropicMessages => Arc::new(AnthropicProvider::new(p, m, client)),
    })
}

/// One complete answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The text.
    pub text: String,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCallReq>,
    /// Token counts.
    pub usage: Usage,
    /// Why it stopped.
    pub finish: FinishReason,
}

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    args: String,
}

/// Most tool calls one answer may carry; a higher tool-call index (a buggy or hostile server)
/// is a protocol error rather than that many calls allocated.
pub(crate) const MAX_TOOL_CALLS: usize = 1024;

/// The partial call at `index`, made (with every one before it) when missing; an index of
/// [`MAX_TOOL_CALLS`] or more is `Protocol`, whichever decoder produced it.
fn slot<'a>(
    provider: &str,
    calls: &'a mut Vec<PartialCall>,
    index: usize,
) -> Result<&'a mut PartialCall, ProviderError> {
    if index >= MAX_TOOL_CALLS {
        return Err(ProviderError::Protocol {
            provider: provider.to_string(),
            message: format!("a tool-call index is {MAX_TOOL_CALLS} or more"),
            truncated: false,
        });
    }
    if calls.len() <= index {
        calls.resize_with(index + 1, PartialCall::default);
    }
    Ok(&mut calls[index])
}

/// Folds a stream into one [`Completion`], calling `on_text` with each text delta as it
/// arrives. A stream that ends without [`ModelEvent::Finish`] broke off: `Protocol` with
/// `truncated: true`.
pub async fn collect(
    provider: &str,
    mut stream: EventStream,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<Completion, ProviderError> {
    let mut text = String::new();
    let mut calls: Vec<PartialCall> = Vec::new();
    let mut usage = Usage::default();
    let mut finish = None;
    while let Some(ev) = stream.next().await {
        match ev? {
            ModelEvent::TextDelta(t) => {
                on_text(&t);
                text.push_str(&t);
            }
            ModelEvent::ToolCallStart { index, id, name } => {
                let c = slot(provider, &mut calls, index)?;
                if c.id.is_empty() {
                    c.id = id;
                }
                if c.name.is_empty() {
                    c.name = name;
                }
            }
            ModelEvent::ToolCallDelta { index, arguments } => {
                slot(provider, &mut calls, index)?.args.push_str(&arguments);
            }
            ModelEvent::Usage { input, output } => {
                if let Some(i) = input {
                    usage.input = i;
                }
                if let Some(o) = output {
                    usage.output = o;
                }
            }
            ModelEvent::Finish(r) => finish = Some(r),
        }
    }
    let Some(mut finish) = finish else {
        return Err(ProviderError::Protocol {
            provider: provider.to_string(),
            message: "the answer ended before it was complete".into(),
            truncated: true,
        });
    };
    let mut tool_calls = Vec::new();
    for (i, c) in calls.into_iter().enumerate() {
        if c.name.is_empty() {
            return Err(ProviderError::Protocol {
                provider: provider.to_string(),
                message: format!("tool call {i} has no name"),
                truncated: false,
            });
        }
        let id = if c.id.is_empty() {
            format!("call_{}", uuid::Uuid::new_v4().simple())
        } else {
            c.id
        };
        let raw = if c.args.trim().is_empty() {
            "{}".to_string()
        } else {
            c.args
        };
        let (arguments, invalid_arguments) = match serde_json::from_str::<Value>(&raw) {
            Ok(v @ Value::Object(_)) => (v, None),
            _ => (Value::Object(Default::default()), Some(raw)),
        };
        tool_calls.push(ToolCallReq {
            id,
            name: c.name,
            arguments,
            invalid_arguments,
        });
    }
    // Some servers say "stop" although they sent tool calls; the calls decide.
    if !tool_calls.is_empty() {
        finish = FinishReason::ToolCalls;
    }
    Ok(Completion {
        text,
        tool_calls,
        usage,
        finish,
    })
}

#[cfg(test)]
mod collect_tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use futures_util::FutureExt;

    fn run(events: Vec<ModelEvent>) -> Result<Completion, ProviderError> {
        let stream: EventStream = Box::pin(futures_util::stream::iter(events.into_iter().map(Ok)));
        collect("p", stream, &mut |_| {}).now_or_never().unwrap()
    }

    /// Whatever decoder produced the events, `collect` itself refuses an index that would make
    /// it allocate thousands of calls; indexes below the cap are folded as before.
    #[test]
    fn tool_call_indexes_are_capped_in_collect_too() {
        for ev in [
            ModelEvent::ToolCallStart {
                index: MAX_TOOL_CALLS,
                id: "c".into(),
                name: "read".into(),
            },
            ModelEvent::ToolCallDelta {
                index: usize::MAX,
                arguments: "{}".into(),
            },
        ] {
            match run(vec![ev, ModelEvent::Finish(FinishReason::ToolCalls)]) {
                Err(ProviderError::Protocol { message, .. }) => {
                    assert!(message.contains("1024 or more"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
        let ok = run(vec![
            ModelEvent::ToolCallStart {
                index: 0,
                id: "c1".into(),
                name: "read".into(),
            },
            ModelEvent::ToolCallDelta {
                index: 0,
                arguments: "{}".into(),
            },
            ModelEvent::Finish(FinishReason::ToolCalls),
        ]);
        assert!(ok.is_ok(), "{ok:?}");
    }
}
