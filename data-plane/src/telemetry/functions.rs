//! agentgateway's CEL functions beyond the standard library (its `schema/cel-functions.md`),
//! with the same results: `json`, `toJson`, `base64.encode` / `base64.decode`, the strings
//! extension, `flatten` / `flattenRecursive` (log and trace fields), `uuid` and `random`.

use std::sync::Arc;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use cel::common::types::CelString;
use cel::objects::{Opaque, Value};
use cel::{Env, ExecutionError};
use serde_json::Value as Json;

/// The standard library, the strings and encoders extensions, and `base64.encode` of a string
/// (agentgateway's spelling; cel-go's takes bytes, which also works).
pub fn env() -> Env {
    let mut env = Env::stdlib();
    let extended = env
        .add_extension(cel::extensions::strings)
        .and_then(|()| env.add_extension(cel::extensions::encoders))
        .and_then(|()| {
            cel::add_overload!(env, fn encode_string: (CelString<'_>) -> CelString<'static>, name = "base64.encode")
        });
    extended.expect("the extensions are declared once");
    env
}

fn encode_string(this: &CelString<'_>) -> CelString<'static> {
    BASE64_STANDARD.encode(this.inner()).into()
}

/// Registers the functions that need no declaration in the environment.
pub fn add(ctx: &mut cel::Context<'_, '_>) {
    let _ = ctx.add_function("json", |v: Value| -> Result<Value, ExecutionError> {
        let parsed: Result<Json, _> = match &v {
            Value::String(s) => serde_json::from_str(s),
            Value::Bytes(b) => serde_json::from_slice(b),
            other => {
                return Err(ExecutionError::function_error(
                    "json",
                    format!("takes a string or bytes, not {:?}", other.type_of()),
                ));
            }
        };
        let parsed = parsed.map_err(|e| ExecutionError::function_error("json", e.to_string()))?;
        cel::to_value(parsed).map_err(|e| ExecutionError::function_error("json", e.to_string()))
    });
    let _ = ctx.add_function("toJson", |v: Value| -> Result<Value, ExecutionError> {
        let json = v
            .json()
            .map_err(|e| ExecutionError::function_error("toJson", e.to_string()))?;
        Ok(Value::String(Arc::new(json.to_string())))
    });
    let _ = ctx.add_function("flatten", |v: Value| flatten_signal(v, false));
    let _ = ctx.add_function("flattenRecursive", |v: Value| flatten_signal(v, true));
    let _ = ctx.add_function("uuid", || uuid::Uuid::new_v4().to_string());
    let _ = ctx.add_function("random", rand::random::<f64>);
}

/// A field value that becomes many fields, `name.key` (or `name.index`) each.
#[derive(Debug, PartialEq, Eq)]
pub struct Flattened {
    value: Json,
    /// Every level (`flattenRecursive`), or only the first (`flatten`).
    recursive: bool,
}

impl Opaque for Flattened {
    fn runtime_type_name(&self) -> &str {
        "tollgate.Flattened"
    }
}

fn flatten_signal(v: Value, recursive: bool) -> Result<Value, ExecutionError> {
    let name = if recursive {
        "flattenRecursive"
    } else {
        "flatten"
    };
    let value = v
        .json()
        .map_err(|e| ExecutionError::function_error(name, e.to_string()))?;
    if !matches!(value, Json::Array(_) | Json::Object(_)) {
        return Err(ExecutionError::function_error(
            name,
            "takes a list or a map",
        ));
    }
    Ok(Value::Opaque(Arc::new(Flattened { value, recursive })))
}

/// A field's result as `(name, value)` pairs: one, or many for a `flatten` result; `None`
/// for an error or null (the field is left out).
pub fn field_values(name: &str, result: Result<Value, ExecutionError>) -> Vec<(String, Json)> {
    let Ok(value) = result else {
        return Vec::new();
    };
    if let Value::Opaque(o) = &value
        && let Some(f) = o.downcast_ref::<Flattened>()
    {
        let mut out = Vec::new();
        spread(name, &f.value, f.recursive, true, &mut out);
        return out;
    }
    match value.json() {
        Ok(Json::Null) | Err(_) => Vec::new(),
        Ok(json) => vec![(name.to_string(), json)],
    }
}

/// `value` under `name`: a list or map is spread one level when `first`, at every level when
/// `recursive`; null leaves are left out, as null fields are.
fn spread(name: &str, value: &Json, recursive: bool, first: bool, out: &mut Vec<(String, Json)>) {
    match value {
        Json::Array(items) if first || recursive => {
            for (i, v) in items.iter().enumerate() {
                spread(&format!("{name}.{i}"), v, recursive, false, out);
            }
        }
        Json::Object(map) if first || recursive => {
            for (k, v) in map {
                spread(&format!("{name}.{k}"), v, recursive, false, out);
            }
        }
        Json::Null => {}
        leaf => out.push((name.to_string(), leaf.clone())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(expr: &str) -> Result<Value, ExecutionError> {
        let mut ctx = cel::Context::with_env(Arc::new(env()));
        add(&mut ctx);
        let _ = ctx.add_variable(
            "llm",
            json!({"prompt": [{"role": "user", "content": "hi"}], "completion": ["hello", "there"]}),
        );
        cel::Program::compile(expr).unwrap().execute(&ctx)
    }

    fn json_of(expr: &str) -> Json {
        eval(expr).unwrap().json().unwrap()
    }

    #[test]
    fn json_parses_strings_and_bytes_and_to_json_writes_them() {
        assert_eq!(json_of(r#"json('{"a": {"b": [1, 2]}}').a.b[1]"#), json!(2));
        assert_eq!(json_of(r#"json(b'{"x": "y"}').x"#), json!("y"));
        assert!(eval("json('{')").is_err());
        assert_eq!(
            json_of(r#"toJson({"hello": "world"})"#),
            json!(r#"{"hello":"world"}"#)
        );
    }

    #[test]
    fn base64_encodes_strings_and_bytes_and_decodes_to_bytes() {
        assert_eq!(json_of(r#"base64.encode("hello")"#), json!("aGVsbG8="));
        assert_eq!(json_of(r#"base64.encode(b"hello")"#), json!("aGVsbG8="));
        assert_eq!(
            json_of(r#"string(base64.decode("aGVsbG8K"))"#),
            json!("hello\n")
        );
    }

    #[test]
    fn the_strings_extension_is_there() {
        assert_eq!(json_of(r#""Hello".lowerAscii()"#), json!("hello"));
        assert_eq!(json_of(r#"["a", "b"].join("-")"#), json!("a-b"));
    }

    #[test]
    fn flatten_spreads_one_level_and_flatten_recursive_every_level() {
        let mut prompt = field_values("gen_ai.prompt", eval("flattenRecursive(llm.prompt)"));
        prompt.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            prompt,
            [
                ("gen_ai.prompt.0.content".to_string(), json!("hi")),
                ("gen_ai.prompt.0.role".to_string(), json!("user")),
            ]
        );
        let completion = field_values(
            "c",
            eval(r#"flattenRecursive(llm.completion.map(c, {"role": "assistant", "content": c}))"#),
        );
        assert_eq!(completion.len(), 4);
        assert!(completion.contains(&("c.1.content".to_string(), json!("there"))));
        let shallow = field_values("p", eval("flatten(llm.prompt)"));
        assert_eq!(
            shallow,
            [("p.0".to_string(), json!({"role": "user", "content": "hi"}))]
        );
        assert!(eval("flatten(1)").is_err());
        assert_eq!(
            field_values("x", eval("1 + 1")),
            [("x".to_string(), json!(2))]
        );
        assert!(field_values("x", eval("null")).is_empty());
    }

    #[test]
    fn uuid_and_random_generate() {
        assert_eq!(json_of("uuid()").as_str().unwrap().len(), 36);
        let r = json_of("random()").as_f64().unwrap();
        assert!((0.0..1.0).contains(&r));
    }
}
