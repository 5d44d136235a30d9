//! agentgateway's CEL functions beyond the standard library (its `schema/cel-functions.md`),
//! with the same results: `json`, `toJson`, `unvalidatedJwtPayload`, `base64.encode` /
//! `base64.decode`, `sha1` / `sha256` / `md5.encode`, the strings extension, `regexReplace`,
//! `merge`, `fail`, `flatten` / `flattenRecursive` (log and trace fields), `uuid` and
//! `random`.

use std::sync::Arc;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use cel::common::types::{CelBytes, CelString};
use cel::extractors::This;
use cel::objects::{Opaque, Value};
use cel::{Env, ExecutionError};
use serde_json::Value as Json;
use sha2::Digest;

/// The standard library, the strings and encoders extensions, and `base64.encode` of a string
/// (agentgateway's spelling; cel-go's takes bytes, which also works).
pub fn env() -> Env {
    let mut env = Env::stdlib();
    let extended = env
        .add_extension(cel::extensions::strings)
        .and_then(|()| env.add_extension(cel::extensions::encoders))
        .and_then(|()| {
            cel::add_overload!(env, fn encode_string: (CelString<'_>) -> CelString<'static>, name = "base64.encode")
        })
        .and_then(|()| cel::add_overload!(env, fn sha1_string: (CelString<'_>) -> CelString<'static>, name = "sha1.encode"))
        .and_then(|()| cel::add_overload!(env, fn sha1_bytes: (CelBytes<'_>) -> CelString<'static>, name = "sha1.encode"))
        .and_then(|()| cel::add_overload!(env, fn sha256_string: (CelString<'_>) -> CelString<'static>, name = "sha256.encode"))
        .and_then(|()| cel::add_overload!(env, fn sha256_bytes: (CelBytes<'_>) -> CelString<'static>, name = "sha256.encode"))
        .and_then(|()| cel::add_overload!(env, fn md5_string: (CelString<'_>) -> CelString<'static>, name = "md5.encode"))
        .and_then(|()| cel::add_overload!(env, fn md5_bytes: (CelBytes<'_>) -> CelString<'static>, name = "md5.encode"));
    extended.expect("the extensions are declared once");
    env
}

fn encode_string(this: &CelString<'_>) -> CelString<'static> {
    BASE64_STANDARD.encode(this.inner()).into()
}

/// The lowercase hex digest of `bytes` by `D`.
fn hex_digest<D: Digest>(bytes: &[u8]) -> CelString<'static> {
    D::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into()
}

fn sha1_string(this: &CelString<'_>) -> CelString<'static> {
    hex_digest::<sha1::Sha1>(this.inner().as_bytes())
}

fn sha1_bytes(this: &CelBytes<'_>) -> CelString<'static> {
    hex_digest::<sha1::Sha1>(this.inner())
}

fn sha256_string(this: &CelString<'_>) -> CelString<'static> {
    hex_digest::<sha2::Sha256>(this.inner().as_bytes())
}

fn sha256_bytes(this: &CelBytes<'_>) -> CelString<'static> {
    hex_digest::<sha2::Sha256>(this.inner())
}

fn md5_string(this: &CelString<'_>) -> CelString<'static> {
    hex_digest::<md5::Md5>(this.inner().as_bytes())
}

fn md5_bytes(this: &CelBytes<'_>) -> CelString<'static> {
    hex_digest::<md5::Md5>(this.inner())
}

/// The largest compiled `regexReplace` pattern: a pattern comes from the config, but its
/// size is bounded all the same.
const MAX_REGEX: usize = 1 << 20;

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
    let _ = ctx.add_function(
        "unvalidatedJwtPayload",
        |token: Arc<String>| -> Result<Value, ExecutionError> {
            let fail = |why: &str| ExecutionError::function_error("unvalidatedJwtPayload", why);
            let payload = token.split('.').nth(1).ok_or_else(|| fail("not a JWT"))?;
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .map_err(|_| fail("the payload is not base64url"))?;
            let claims: Json =
                serde_json::from_slice(&decoded).map_err(|_| fail("the payload is not JSON"))?;
            cel::to_value(claims).map_err(|e| fail(&e.to_string()))
        },
    );
    let _ = ctx.add_function(
        "regexReplace",
        |This(text): This<Arc<String>>,
         pattern: Arc<String>,
         with: Arc<String>|
         -> Result<Value, ExecutionError> {
            let re = regex::RegexBuilder::new(&pattern)
                .size_limit(MAX_REGEX)
                .build()
                .map_err(|e| ExecutionError::function_error("regexReplace", e.to_string()))?;
            Ok(Value::String(Arc::new(
                re.replace_all(&text, with.as_str()).into_owned(),
            )))
        },
    );
    let _ = ctx.add_function(
        "merge",
        |This(base): This<Value>, other: Value| -> Result<Value, ExecutionError> {
            let fail = || ExecutionError::function_error("merge", "takes two maps");
            let (Ok(Json::Object(mut base)), Ok(Json::Object(other))) = (base.json(), other.json())
            else {
                return Err(fail());
            };
            base.extend(other);
            cel::to_value(Json::Object(base)).map_err(|_| fail())
        },
    );
    let _ = ctx.add_function(
        "fail",
        |why: Arc<String>| -> Result<Value, ExecutionError> {
            Err(ExecutionError::function_error("fail", why.as_str()))
        },
    );
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
    fn digests_are_lowercase_hex() {
        assert_eq!(
            json_of(r#"sha256.encode("hello")"#),
            json!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        assert_eq!(
            json_of(r#"sha1.encode(b"hello")"#),
            json!("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
        );
        assert_eq!(
            json_of(r#"md5.encode("hello")"#),
            json!("5d41402abc4b2a76b9719d911017c592")
        );
    }

    #[test]
    fn regex_replace_merge_fail_and_jwt_payloads() {
        assert_eq!(
            json_of(r#""/id/1234/data".regexReplace("/id/[0-9]*/", "/id/{id}/")"#),
            json!("/id/{id}/data")
        );
        assert_eq!(
            json_of(r#"{"a": 2, "k": "v"}.merge({"a": 3})"#),
            json!({"a": 3, "k": "v"})
        );
        assert!(eval(r#"fail("no")"#).is_err());
        // {"alg":"none"}.{"sub":"me"}.
        assert_eq!(
            json_of(r#"unvalidatedJwtPayload("eyJhbGciOiJub25lIn0.eyJzdWIiOiJtZSJ9.").sub"#),
            json!("me")
        );
        assert!(eval(r#"unvalidatedJwtPayload("nope")"#).is_err());
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
