//! OpenAI chat completions <-> Anthropic Messages, for requests, responses and errors.
//!
//! Works on `serde_json::Value` so fields we do not translate never break a request; every
//! field DESIGN §5 lists is mapped explicitly. Streams are in `stream.rs`.

use serde_json::{Map, Value, json};

/// Anthropic requires `max_tokens`; OpenAI clients often omit it.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A client body that is not a valid request of its API.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Anthropic content of an OpenAI assistant message: its text, then one `tool_use` per tool
/// call. Blank arguments become `{}`; `unparsed` says what arguments that are not JSON become.
fn assistant_blocks(msg: &Value, unparsed: fn(&str) -> Value) -> Vec<Value> {
    let mut blocks = Vec::new();
    let text = text_of(msg.get("content").unwrap_or(&Value::Null));
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for call in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = &call["function"];
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
        let input = if args.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).unwrap_or_else(|_| unparsed(args))
        };
        blocks
            .push(json!({"type": "tool_use", "id": call["id"], "name": f["name"], "input": input}));
    }
    blocks
}

fn unknown_role(index: usize, role: &str) -> InvalidRequest {
    InvalidRequest(format!("messages[{index}]: unknown role `{role}`"))
}

/// A translated request's start: the model and the messages.
fn base_body(model: &str, messages: Vec<Value>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.into()));
    body.insert("messages".into(), Value::Array(messages));
    body
}

// === OpenAI request -> Anthropic request ===

pub fn completions_to_messages(req: &Value, model: &str) -> Result<Value, InvalidRequest> {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| InvalidRequest("missing field: `messages` must be an array".into()))?;
    let mut system = Vec::new();
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| InvalidRequest(format!("messages[{i}]: missing field `role`")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => system.push(text_of(content)),
            "user" => {
                let blocks = user_blocks(content);
                if !blocks.is_empty() {
                    out.push(json!({"role": "user", "content": blocks}));
                }
            }
            "assistant" => {
                // Like agentgateway, arguments that are not JSON travel as a string.
                let blocks = assistant_blocks(m, |args| Value::String(args.into()));
                if !blocks.is_empty() {
                    out.push(json!({"role": "assistant", "content": blocks}));
                }
            }
            "tool" => out.push(json!({"role": "user", "content": [{
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id").cloned().unwrap_or(Value::Null),
                "content": text_of(content),
            }]})),
            other => return Err(unknown_role(i, other)),
        }
    }
    let mut body = base_body(model, out);
    if !system.is_empty() {
        body.insert("system".into(), Value::String(system.join("\n")));
    }
    let max = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    body.insert("max_tokens".into(), max.into());
    match req.get("stop") {
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            body.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.get(key).filter(|v| !v.is_null()) {
            body.insert(key.into(), v.clone());
        }
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        body.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                let mut tool = json!({"name": f["name"], "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}))});
                if let Some(d) = f.get("description") {
                    tool["description"] = d.clone();
                }
                tool
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    let choice = match req.get("tool_choice") {
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|name| json!({"type": "tool", "name": name})),
        _ => None,
    };
    set_tool_choice(&mut body, choice, req);
    Ok(Value::Object(body))
}

/// Anthropic's `tool_choice`: `choice`, with OpenAI's `parallel_tool_calls: false` as
/// `disable_parallel_tool_use` (both APIs' requests carry it alike).
pub(super) fn set_tool_choice(body: &mut Map<String, Value>, choice: Option<Value>, req: &Value) {
    let mut choice = choice;
    if req.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        c["disable_parallel_tool_use"] = Value::Bool(true);
    }
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
}

fn user_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Some(json!({"type": "text", "text": p["text"]})),
                Some("image_url") => {
                    let url = p["image_url"]["url"].as_str().unwrap_or("");
                    Some(match parse_data_url(url) {
                        Some((media, data)) => json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}),
                        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
                    })
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    Some((meta.strip_suffix(";base64")?, data))
}

// === Anthropic request -> OpenAI request ===

pub fn messages_to_completions(req: &Value, model: &str) -> Result<Value, InvalidRequest> {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| InvalidRequest("missing field: `messages` must be an array".into()))?;
    let mut out = Vec::new();
    match req.get("system") {
        Some(Value::Null) | None => {}
        Some(s) => out.push(json!({"role": "system", "content": text_of(s)})),
    }
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| InvalidRequest(format!("messages[{i}]: missing field `role`")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        let blocks: Vec<Value> = match content {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(a) => a.clone(),
            _ => Vec::new(),
        };
        match role {
            "user" => {
                let mut parts = Vec::new();
                for b in &blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("tool_result") => out.push(json!({
                            "role": "tool",
                            "tool_call_id": b["tool_use_id"],
                            "content": text_of(b.get("content").unwrap_or(&Value::Null)),
                        })),
                        Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
                        Some("image") => {
                            let src = &b["source"];
                            let url = match src["type"].as_str() {
                                Some("base64") => format!(
                                    "data:{};base64,{}",
                                    src["media_type"].as_str().unwrap_or("image/png"),
                                    src["data"].as_str().unwrap_or("")
                                ),
                                _ => src["url"].as_str().unwrap_or("").to_string(),
                            };
                            parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                        }
                        _ => {}
                    }
                }
                if parts.iter().all(|p| p["type"] == "text") && !parts.is_empty() {
                    let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
                    out.push(json!({"role": "user", "content": text.join("\n")}));
                } else if !parts.is_empty() {
                    out.push(json!({"role": "user", "content": parts}));
                }
            }
            "assistant" => {
                let (text, calls) = assistant_parts(&blocks);
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                out.push(msg);
            }
            other => return Err(unknown_role(i, other)),
        }
    }
    let mut body = base_body(model, out);
    if let Some(max) = req.get("max_tokens").and_then(Value::as_u64) {
        body.insert("max_completion_tokens".into(), max.into());
    }
    if let Some(stop) = req.get("stop_sequences").filter(|v| v.is_array()) {
        body.insert("stop".into(), stop.clone());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = req.get(key).filter(|v| !v.is_null()) {
            body.insert(key.into(), v.clone());
        }
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        body.insert("stream".into(), Value::Bool(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(user) = req.pointer("/metadata/user_id").and_then(Value::as_str) {
        body.insert("user".into(), Value::String(user.into()));
    }
    if let Some(tools) = req.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t["name"], "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"}))});
                if let Some(d) = t.get("description") {
                    f["description"] = d.clone();
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = req.get("tool_choice") {
        let mapped = match choice["type"].as_str() {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": choice["name"]}}),
            _ => Value::Null,
        };
        if !mapped.is_null() {
            body.insert("tool_choice".into(), mapped);
        }
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            body.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok(Value::Object(body))
}

/// Anthropic assistant content blocks as OpenAI's text and `tool_calls`.
fn assistant_parts(blocks: &[Value]) -> (String, Vec<Value>) {
    let text = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    let calls = blocks
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| json!({"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": b["input"].to_string()}}))
        .collect();
    (text, calls)
}

// === Responses ===

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI `finish_reason` -> Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Why an upstream 2xx body is not a response of its provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadResponse(pub String);

pub fn messages_response_to_completion(resp: &Value, created: u64) -> Result<Value, BadResponse> {
    let blocks = resp
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| BadResponse("an Anthropic message without a `content` array".into()))?;
    let (text, calls) = assistant_parts(blocks);
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let input = resp
        .pointer("/usage/input_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let output = resp
        .pointer("/usage/output_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(json!({
        "id": resp.get("id").cloned().unwrap_or(Value::Null),
        "object": "chat.completion",
        "created": created,
        "model": resp.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(resp.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn")),
        }],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input.saturating_add(output)},
    }))
}

pub fn completion_to_messages_response(resp: &Value) -> Result<Value, BadResponse> {
    let choice = resp
        .pointer("/choices/0")
        .ok_or_else(|| BadResponse("an OpenAI completion without `choices`".into()))?;
    // An Anthropic client expects an object: arguments that are not JSON become `{}`.
    let content = assistant_blocks(&choice["message"], |_| json!({}));
    Ok(json!({
        "id": resp.get("id").cloned().unwrap_or(Value::Null),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason").and_then(Value::as_str).unwrap_or("stop")),
        "stop_sequence": Value::Null,
        "usage": {
            "input_tokens": resp.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
            "output_tokens": resp.pointer("/usage/completion_tokens").and_then(Value::as_u64).unwrap_or(0),
        },
    }))
}

// === Errors ===

/// An error body in OpenAI's shape.
pub fn openai_error(message: &str, kind: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": Value::Null, "code": Value::Null}})
}

/// An error body in Anthropic's shape.
pub fn anthropic_error(message: &str, kind: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// Anthropic's error type for a status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The message and type of an upstream error body of either shape (or plain text).
pub fn error_parts(body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            // Vertex's OpenAI-compatible endpoint wraps Google's error object in an array.
            let e = v.as_array().and_then(|a| a.first()).unwrap_or(&v);
            let e = e.get("error").unwrap_or(e);
            let message = e.get("message").and_then(Value::as_str).map(str::to_string);
            let kind = e
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("api_error")
                .to_string();
            (message.unwrap_or_else(|| v.to_string()), kind)
        }
        Err(_) => (
            String::from_utf8_lossy(body).trim().to_string(),
            "api_error".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests;
