//! The conversation as the loop sees it, independent of any wire format.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An image given to the model (base64, as every API wants it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageData {
    /// `image/png`, `image/jpeg`, `image/gif`, `image/webp`.
    pub mime: String,
    /// Base64 (standard alphabet, padded), without a `data:` prefix.
    pub data: String,
}

/// A part of a user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image (sent only to models whose config says they accept images).
    Image {
        /// The image.
        #[serde(flatten)]
        image: ImageData,
    },
}

/// One tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallReq {
    /// The call id the result must answer.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments (always a JSON object; `{}` when the model sent something unparsable).
    pub arguments: Value,
    /// The raw argument text, when it was not a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_arguments: Option<String>,
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// From the user.
    User(Vec<ContentPart>),
    /// From the model: text and/or tool calls.
    Assistant {
        /// The text (may be empty when there are tool calls).
        text: String,
        /// Tool calls, in the order the model made them.
        tool_calls: Vec<ToolCallReq>,
    },
    /// The result of one tool call.
    Tool {
        /// The call it answers.
        call_id: String,
        /// The tool's name.
        name: String,
        /// What the model reads (JSON text of the result or of the error envelope).
        content: String,
        /// True for a failed call.
        is_error: bool,
    },
}

impl Message {
    /// A rough token estimate (4 characters per token, images at a fixed cost): enough to keep
    /// a conversation inside a context window with a margin, without a tokenizer per model.
    pub fn estimate_tokens(&self) -> usize {
        const IMAGE_TOKENS: usize = 1600;
        let chars = match self {
            Message::User(parts) => parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len(),
                    ContentPart::Image { .. } => IMAGE_TOKENS * 4,
                })
                .sum(),
            Message::Assistant { text, tool_calls } => {
                text.len()
                    + tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.to_string().len() + 16)
                        .sum::<usize>()
            }
            Message::Tool { content, .. } => content.len() + 16,
        };
        chars / 4 + 4
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// JSON Schema of the arguments (`type: "object"`).
    pub parameters: Value,
}

/// How the model may use tools in one call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool.
    Tool(String),
}

/// Token counts of one model call, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.input += o.input;
        self.output += o.output;
    }
}
