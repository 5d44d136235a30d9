//! Token usage of one LLM exchange, reported once when its response ends.

use std::borrow::Cow;

use serde::Deserialize;

/// What an exchange consumed, as far as the upstream said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub response_model: Option<String>,
}

impl Usage {
    pub fn total(&self) -> u64 {
        // Counts come from the upstream: a huge one must not overflow.
        self.input
            .unwrap_or(0)
            .saturating_add(self.output.unwrap_or(0))
    }
}

/// The few fields usage accounting needs, parsed without building a JSON tree.
#[derive(Deserialize, Default)]
struct Probe<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<ProbeUsage>,
    #[serde(borrow)]
    message: Option<ProbeMessage<'a>>,
}

#[derive(Deserialize)]
struct ProbeMessage<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<ProbeUsage>,
}

#[derive(Deserialize)]
struct ProbeUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl Probe<'_> {
    fn record(self, usage: &mut Usage) {
        let model = self
            .message
            .as_ref()
            .and_then(|m| m.model.as_ref())
            .or(self.model.as_ref());
        if let Some(m) = model
            && usage.response_model.is_none()
        {
            usage.response_model = Some(m.to_string());
        }
        for u in [self.usage, self.message.and_then(|m| m.usage)]
            .into_iter()
            .flatten()
        {
            usage.input = u.prompt_tokens.or(u.input_tokens).or(usage.input);
            usage.output = u.completion_tokens.or(u.output_tokens).or(usage.output);
        }
    }
}

/// Records usage (and the response model) from a JSON body or stream event: a complete
/// OpenAI completion or chunk, or an Anthropic message or stream event.
pub fn probe(data: &str, usage: &mut Usage) {
    if (usage.response_model.is_none() || data.contains("\"usage\""))
        && let Ok(p) = serde_json::from_str::<Probe<'_>>(data)
    {
        p.record(usage);
    }
}
