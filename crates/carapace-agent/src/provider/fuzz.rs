//! The fuzzing entry of the model stream parsers: arbitrary bytes through the same SSE framing
//! and event decoding the streaming clients use, folded by [`collect`] like a real call.

use carapace_policy::models::ModelApi;
use futures_util::FutureExt;

use super::{Completion, ProviderError, anthropic, collect, openai, sse};

/// Fuzzing entry (not an API): parses `body` as the streamed answer of a model of wire format
/// `api`, delivered in chunks of `chunk_len` bytes (0 counts as 1), and folds it into one
/// [`Completion`]. It must never panic, whatever the bytes; a malformed or broken-off body is
/// a [`ProviderError`].
#[doc(hidden)]
pub fn fuzz_model_stream(
    api: ModelApi,
    body: &[u8],
    chunk_len: usize,
) -> Result<Completion, ProviderError> {
    let chunks: Vec<Result<bytes::Bytes, ProviderError>> = body
        .chunks(chunk_len.max(1))
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let events = sse::events(futures_util::stream::iter(chunks));
    let provider = "fuzz".to_string();
    let stream = match api {
        ModelApi::OpenAiCompletions => openai::decode(provider, events),
        ModelApi::AnthropicMessages => anthropic::decode(provider, events),
    };
    // Every input is already there, so the whole fold completes in one poll.
    collect("fuzz", stream, &mut |_| {})
        .now_or_never()
        .unwrap_or_else(|| {
            Err(ProviderError::Protocol {
                provider: "fuzz".into(),
                message: "the stream did not complete in one poll".into(),
                truncated: true,
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::provider::FinishReason;

    const OPENAI: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"read\",\"arguments\":\"{\\\"pa\"}}]}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"th\\\":\\\"a\\\"}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: [DONE]\n\n";

    const ANTHROPIC: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"read\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"path\\\":\\\"a\\\"}\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn decodes_both_wire_formats_in_any_chunking() {
        for chunk in [0, 1, 3, 4096] {
            let c =
                fuzz_model_stream(ModelApi::OpenAiCompletions, OPENAI.as_bytes(), chunk).unwrap();
            assert_eq!(c.text, "Hi");
            assert_eq!(c.tool_calls[0].arguments["path"], "a");
            assert_eq!(c.finish, FinishReason::ToolCalls);
            let c = fuzz_model_stream(ModelApi::AnthropicMessages, ANTHROPIC.as_bytes(), chunk)
                .unwrap();
            assert_eq!(c.tool_calls[0].name, "read");
            assert_eq!(c.tool_calls[0].arguments["path"], "a");
            assert_eq!((c.usage.input, c.usage.output), (7, 9));
        }
    }

    #[test]
    fn a_huge_tool_call_index_is_refused_not_allocated() {
        let body = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":18446744073709551615,\"id\":\"x\",\"function\":{\"name\":\"f\"}}]}}]}\n\ndata: [DONE]\n\n";
        let e = fuzz_model_stream(ModelApi::OpenAiCompletions, body.as_bytes(), 64).unwrap_err();
        assert!(
            matches!(
                e,
                ProviderError::Protocol {
                    truncated: false,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for api in [ModelApi::OpenAiCompletions, ModelApi::AnthropicMessages] {
            assert!(fuzz_model_stream(api, b"\xff\xfe data: {\n\n", 2).is_err());
            assert!(fuzz_model_stream(api, b"", 1).is_err());
        }
    }
}
