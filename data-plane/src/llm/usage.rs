//! Token usage of one LLM exchange, reported once when its response ends.

use serde_json::Value;

/// What an exchange consumed, as far as the upstream said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub response_model: Option<String>,
}

impl Usage {
    /// From a complete OpenAI `chat.completion` or Anthropic `message`.
    pub fn from_response(body: &Value) -> Usage {
        let u = &body["usage"];
        let pick = |a: &str, b: &str| u.get(a).or_else(|| u.get(b)).and_then(Value::as_u64);
        Usage {
            input: pick("prompt_tokens", "input_tokens"),
            output: pick("completion_tokens", "output_tokens"),
            response_model: body
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }

    pub fn total(&self) -> u64 {
        self.input.unwrap_or(0) + self.output.unwrap_or(0)
    }
}
