//! OpenAI Responses API <-> Anthropic Messages, so a Responses client (Codex, the `openai`
//! SDK's `responses.create`) can use a Messages upstream: requests, answers and errors.
//!
//! A translation keeps no state, so what needs OpenAI's stored responses, conversations,
//! files or hosted tools is refused by name rather than dropped. Streams are in
//! `responses/stream.rs`.

pub mod stream;

use serde_json::{Map, Value, json};

use super::translate::{
    BadResponse, DEFAULT_MAX_TOKENS, InvalidRequest, parse_data_url, set_tool_choice,
};

/// The request fields a Responses answer repeats back.
const ECHOED: [&str; 10] = [
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "user",
];

/// OpenAI's value of an echoed field the request left out.
fn echoed_default(key: &str) -> Value {
    match key {
        "metadata" => json!({}),
        "parallel_tool_calls" => Value::Bool(true),
        "temperature" | "top_p" => json!(1.0),
        "text" => json!({"format": {"type": "text"}}),
        "tool_choice" => json!("auto"),
        "tools" => json!([]),
        _ => Value::Null,
    }
}

/// The answer's fields that come from the request: everything but the id, time, status,
/// output and usage. A translation stores nothing, so `store` is false.
pub fn template(field: impl Fn(&str) -> Option<Value>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("object".into(), json!("response"));
    out.insert("error".into(), Value::Null);
    out.insert("incomplete_details".into(), Value::Null);
    out.insert("previous_response_id".into(), Value::Null);
    out.insert("reasoning".into(), Value::Null);
    out.insert("store".into(), Value::Bool(false));
    out.insert("truncation".into(), json!("disabled"));
    for key in ECHOED {
        let value = field(key)
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| echoed_default(key));
        out.insert(key.into(), value);
    }
    out
}

/// A field that asks for state or a service only OpenAI has.
fn refused(what: &str, instead: &str) -> InvalidRequest {
    InvalidRequest(format!(
        "{what} cannot be translated to the upstream's Messages API: {instead}"
    ))
}

// === Responses request -> Anthropic request ===

pub fn to_messages(req: &Value, model: &str) -> Result<Value, InvalidRequest> {
    for (key, instead) in [
        (
            "previous_response_id",
            "the gateway keeps no responses; send the whole conversation in `input`",
        ),
        (
            "conversation",
            "the gateway keeps no conversations; send the whole conversation in `input`",
        ),
        (
            "prompt",
            "stored prompts are OpenAI's; send the prompt itself",
        ),
    ] {
        if req.get(key).is_some_and(|v| !v.is_null()) {
            return Err(refused(&format!("`{key}`"), instead));
        }
    }
    if req.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(refused(
            "`background: true`",
            "background responses are stored by OpenAI; stream instead",
        ));
    }
    let mut system: Vec<String> = req
        .get("instructions")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .into_iter()
        .collect();
    let mut messages: Vec<Value> = Vec::new();
    match req.get("input") {
        Some(Value::String(text)) => push(&mut messages, "user", text_block(text)),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(i, item, &mut system, &mut messages)?;
            }
        }
        _ => {
            return Err(InvalidRequest(
                "missing field: `input` must be a string or an array".into(),
            ));
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.into()));
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::String(system.join("\n")));
    }
    let max = req
        .get("max_output_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    body.insert("max_tokens".into(), max.into());
    for key in ["temperature", "top_p", "stream"] {
        if let Some(v) = req.get(key).filter(|v| !v.is_null()) {
            body.insert(key.into(), v.clone());
        }
    }
    if let Some(user) = req.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    match req.pointer("/text/format/type").and_then(Value::as_str) {
        None | Some("text") => {}
        Some(other) => {
            return Err(refused(
                &format!("`text.format` of type `{other}`"),
                "Anthropic models take no output schema; describe the format in the prompt",
            ));
        }
    }
    let tools = tools(
        req.get("tools")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice),
    );
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    let choice = match req.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            Some(json!({"type": "tool", "name": o.get("name").cloned().unwrap_or(Value::Null)}))
        }
        Some(other) => {
            return Err(refused(
                &format!("`tool_choice` {other}"),
                "choose `auto`, `required`, `none` or a function",
            ));
        }
    };
    set_tool_choice(&mut body, choice, req);
    Ok(Value::Object(body))
}

fn text_block(text: &str) -> Vec<Value> {
    vec![json!({"type": "text", "text": text})]
}

/// Appends `blocks` as a `role` turn, joining the previous turn when it has the same role
/// (a function call joins the assistant's text, tool results share one user turn).
fn push(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

fn input_item(
    i: usize,
    item: &Value,
    system: &mut Vec<String>,
    messages: &mut Vec<Value>,
) -> Result<(), InvalidRequest> {
    let at = |what: &str| InvalidRequest(format!("input[{i}]: {what}"));
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match kind {
        "message" => {
            let role = item
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| at("missing field `role`"))?;
            let content = item.get("content").unwrap_or(&Value::Null);
            match role {
                "system" | "developer" => {
                    let blocks = content_blocks(content).map_err(|e| at(&e))?;
                    let text: Vec<&str> =
                        blocks.iter().filter_map(|b| b["text"].as_str()).collect();
                    system.push(text.join("\n"));
                }
                "user" | "assistant" => {
                    push(messages, role, content_blocks(content).map_err(|e| at(&e))?);
                }
                other => return Err(at(&format!("unknown role `{other}`"))),
            }
        }
        "function_call" => {
            let args = item.get("arguments").and_then(Value::as_str).unwrap_or("");
            // Anthropic wants an object: arguments that are not JSON travel as a string.
            let input = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).unwrap_or_else(|_| Value::String(args.into()))
            };
            let id = item.get("call_id").ok_or_else(|| at("missing `call_id`"))?;
            push(
                messages,
                "assistant",
                vec![
                    json!({"type": "tool_use", "id": id, "name": item.get("name").cloned().unwrap_or(Value::Null), "input": input}),
                ],
            );
        }
        "function_call_output" => {
            let id = item.get("call_id").ok_or_else(|| at("missing `call_id`"))?;
            let content = match item.get("output") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(parts @ Value::Array(_)) => {
                    Value::Array(content_blocks(parts).map_err(|e| at(&e))?)
                }
                _ => return Err(at("`output` must be a string or an array")),
            };
            push(
                messages,
                "user",
                vec![json!({"type": "tool_result", "tool_use_id": id, "content": content})],
            );
        }
        // The model's own reasoning from an OpenAI model: opaque to any other provider.
        "reasoning" => {}
        "item_reference" => {
            return Err(refused(
                &format!("input[{i}]: an `item_reference`"),
                "the gateway keeps no items; send the item itself",
            ));
        }
        other => {
            return Err(refused(
                &format!("input[{i}]: an item of type `{other}`"),
                "only messages, function calls and their outputs translate",
            ));
        }
    }
    Ok(())
}

/// Anthropic blocks of a message's content: a string, or input/output text, images and
/// PDF files given inline.
fn content_blocks(content: &Value) -> Result<Vec<Value>, String> {
    let parts = match content {
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::String(s) => return Ok(text_block(s)),
        Value::Array(parts) => parts,
        _ => return Err("`content` must be a string or an array".into()),
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for part in parts {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        let block = match kind {
            "input_text" | "output_text" | "text" => {
                json!({"type": "text", "text": part.get("text").cloned().unwrap_or_default()})
            }
            "refusal" => {
                json!({"type": "text", "text": part.get("refusal").cloned().unwrap_or_default()})
            }
            "input_image" => {
                let url = part
                    .get("image_url")
                    .and_then(Value::as_str)
                    .ok_or("an `input_image` without `image_url` (stored files are OpenAI's)")?;
                match parse_data_url(url) {
                    Some((media, data)) => {
                        json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
                    }
                    None => json!({"type": "image", "source": {"type": "url", "url": url}}),
                }
            }
            "input_file" => {
                let data = part
                    .get("file_data")
                    .and_then(Value::as_str)
                    .and_then(parse_data_url)
                    .filter(|(media, _)| *media == "application/pdf")
                    .ok_or(
                        "an `input_file` translates only as an inline PDF (`file_data` data URL)",
                    )?;
                json!({"type": "document", "source": {"type": "base64", "media_type": data.0, "data": data.1}})
            }
            other => {
                return Err(format!(
                    "a content part of type `{other}` does not translate"
                ));
            }
        };
        blocks.push(block);
    }
    Ok(blocks)
}

/// Anthropic tools of Responses tools: functions, also those grouped in a `namespace`. Tools
/// OpenAI runs itself (web and file search, computer use...) cannot run elsewhere: they are
/// offers the model may ignore, so they are not offered (a `tool_choice` forcing one is
/// refused).
fn tools(tools: &[Value]) -> Vec<Value> {
    let mut out = Vec::with_capacity(tools.len());
    for t in tools {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => out.push(function_tool(t)),
            Some("namespace") => out.extend(
                t.get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|t| t["type"] == "function")
                    .map(function_tool),
            ),
            _ => {}
        }
    }
    out
}

fn function_tool(t: &Value) -> Value {
    let mut tool = json!({
        "name": t.get("name").cloned().unwrap_or(Value::Null),
        "input_schema": t.get("parameters").filter(|p| !p.is_null()).cloned().unwrap_or_else(|| json!({"type": "object"})),
    });
    if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
        tool["description"] = d.clone();
    }
    tool
}

/// The `namespace` of the request's tools that function `name` belongs to.
pub fn namespace_of(template: &Map<String, Value>, name: &Value) -> Option<Value> {
    template
        .get("tools")?
        .as_array()?
        .iter()
        .filter(|t| t["type"] == "namespace")
        .find(|t| {
            t["tools"]
                .as_array()
                .is_some_and(|inner| inner.iter().any(|f| &f["name"] == name))
        })
        .map(|t| t["name"].clone())
}

// === Anthropic answer -> Responses answer ===

/// `resp_…` from an Anthropic message id (`msg_…`), so one answer keeps one id.
pub fn response_id(message_id: &str) -> String {
    format!(
        "resp_{}",
        message_id.strip_prefix("msg_").unwrap_or(message_id)
    )
}

/// The id of output item `index` of response `id`.
pub fn item_id(response_id: &str, index: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("msg_{base}_{index}")
}

/// A `message` output item holding one text part.
pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// The id of the `function_call` item of Anthropic tool use `call_id`.
pub fn function_item_id(call_id: &Value) -> String {
    let id = call_id.as_str().unwrap_or_default();
    format!("fc_{}", id.strip_prefix("toolu_").unwrap_or(id))
}

/// A `function_call` output item for Anthropic tool use `call_id`.
pub fn function_item(
    call_id: &Value,
    name: &Value,
    namespace: Option<&Value>,
    arguments: &str,
    status: &str,
) -> Value {
    let mut item = json!({"type": "function_call", "id": function_item_id(call_id),
        "call_id": call_id, "name": name, "arguments": arguments, "status": status});
    if let Some(ns) = namespace {
        item["namespace"] = ns.clone();
    }
    item
}

/// Responses `usage` of Anthropic token counts: cached reads and writes are input tokens.
pub fn usage(input: u64, cached: u64, output: u64) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input.saturating_add(output),
    })
}

/// `status` and `incomplete_details` of an Anthropic `stop_reason`.
pub fn status(stop_reason: Option<&str>) -> (&'static str, Value) {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => {
            ("incomplete", json!({"reason": "max_output_tokens"}))
        }
        Some("refusal") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The whole response object: `template` with what the answer decided.
pub fn response(
    template: &Map<String, Value>,
    id: &str,
    created: u64,
    model: &Value,
    status: (&str, Value),
    output: Vec<Value>,
    usage: Option<Value>,
) -> Value {
    let mut out = template.clone();
    out.insert("id".into(), Value::String(id.into()));
    out.insert("created_at".into(), created.into());
    out.insert("model".into(), model.clone());
    out.insert("status".into(), Value::String(status.0.into()));
    out.insert("incomplete_details".into(), status.1);
    out.insert("output".into(), Value::Array(output));
    out.insert("usage".into(), usage.unwrap_or(Value::Null));
    Value::Object(out)
}

/// Input, cached-input and output tokens of an Anthropic `usage` object.
pub fn anthropic_counts(usage: &Value) -> (u64, u64, u64) {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let input = n("input_tokens")
        .saturating_add(cached)
        .saturating_add(n("cache_creation_input_tokens"));
    (input, cached, n("output_tokens"))
}

pub fn from_message(
    resp: &Value,
    template: &Map<String, Value>,
    created: u64,
) -> Result<Value, BadResponse> {
    let blocks = resp
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| BadResponse("an Anthropic message without a `content` array".into()))?;
    let id = response_id(resp.get("id").and_then(Value::as_str).unwrap_or_default());
    let mut output = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block.get("text").and_then(Value::as_str).unwrap_or("");
                output.push(message_item(&item_id(&id, output.len()), text, "completed"));
            }
            Some("tool_use") => {
                let args = block
                    .get("input")
                    .map_or_else(|| "{}".into(), Value::to_string);
                let namespace = namespace_of(template, &block["name"]);
                output.push(function_item(
                    &block["id"],
                    &block["name"],
                    namespace.as_ref(),
                    &args,
                    "completed",
                ));
            }
            // Thinking is not asked for; anything else has no Responses item.
            _ => {}
        }
    }
    let (input, cached, out) = anthropic_counts(resp.get("usage").unwrap_or(&Value::Null));
    Ok(response(
        template,
        &id,
        created,
        resp.get("model").unwrap_or(&Value::Null),
        status(resp.get("stop_reason").and_then(Value::as_str)),
        output,
        Some(usage(input, cached, out)),
    ))
}

#[cfg(test)]
mod tests;
