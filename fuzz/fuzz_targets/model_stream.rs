//! The model stream parsers (OpenAI Chat Completions chunks, Anthropic Messages events) on
//! arbitrary bytes: no panic, no unbounded allocation. The first byte picks the wire format, the
//! second the chunk length the bytes arrive in; the rest is the streamed body.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let [api, chunk, body @ ..] = data else {
            return;
        };
        let api = if api & 1 == 0 {
            carapace_policy::models::ModelApi::OpenAiCompletions
        } else {
            carapace_policy::models::ModelApi::AnthropicMessages
        };
        let _ = carapace_agent::provider::fuzz_model_stream(api, body, usize::from(*chunk));
    });
}
