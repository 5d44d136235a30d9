//! A client's LLM request read as raw top-level fields: the gateway reads a few scalars and
//! sets a few fields, so the rest of a body (messages, images) never becomes a JSON tree.

use std::borrow::Cow;
use std::collections::BTreeMap;

use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use tollgate_shared::config::model::RouteType;

use super::edit::RequestEdits;
use super::provider::Format;
use super::responses;
use super::translate::{self, InvalidRequest};
use crate::http::error::ProxyError;

/// The request body's top-level fields, each the raw JSON text of its value in the body (or
/// of a value a `policies.ai` edit set). Keys are sorted (as in `serde_json::Map`); a repeated
/// key keeps its last value.
#[derive(Clone)]
pub struct ClientRequest<'a> {
    fields: Fields<'a>,
}

/// A JSON object's fields as raw JSON text, borrowed from the bytes read.
type Fields<'a> = BTreeMap<Cow<'a, str>, Cow<'a, RawValue>>;

/// Most top-level fields a request may have (APIs define a few dozen): a body of millions of
/// tiny fields would cost many times its bytes even as raw values.
pub const MAX_FIELDS: usize = 256;

/// Any JSON value whose strings decode, checked without keeping anything: a raw value is only
/// checked to be well formed, and one with a lone surrogate escape (`"\ud800"`) must not be
/// passed on as JSON.
struct Decoded;

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Decoded;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Decoded, E> {
                Ok(Decoded)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Decoded, E> {
                Ok(Decoded)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Decoded, E> {
                Ok(Decoded)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Decoded, E> {
                Ok(Decoded)
            }
            fn visit_str<E>(self, _: &str) -> Result<Decoded, E> {
                Ok(Decoded)
            }
            fn visit_unit<E>(self) -> Result<Decoded, E> {
                Ok(Decoded)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Decoded, A::Error> {
                while seq.next_element::<Decoded>()?.is_some() {}
                Ok(Decoded)
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Decoded, M::Error> {
                while map.next_entry::<Decoded, Decoded>()?.is_some() {}
                Ok(Decoded)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// [`Fields`] of at most [`MAX_FIELDS`] entries.
struct BoundedFields<'a>(Fields<'a>);

impl<'de> Deserialize<'de> for BoundedFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = BoundedFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object as the body")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Fields::new();
                while let Some((key, value)) = map.next_entry::<Cow<'de, str>, &RawValue>()? {
                    fields.insert(key, Cow::Borrowed(value));
                    if fields.len() > MAX_FIELDS {
                        return Err(de::Error::custom(format_args!(
                            "more than {MAX_FIELDS} top-level fields"
                        )));
                    }
                }
                Ok(BoundedFields(fields))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl<'a> ClientRequest<'a> {
    /// The body's fields, checked to be one JSON object (the whole body is validated).
    pub fn parse(body: &'a [u8]) -> Result<ClientRequest<'a>, ProxyError> {
        let parsed = serde_json::from_slice(body).and_then(|BoundedFields(fields)| {
            for raw in fields.values() {
                serde_json::from_str::<Decoded>(raw.get())?;
            }
            Ok(fields)
        });
        match parsed {
            Ok(fields) => Ok(ClientRequest { fields }),
            Err(e) if e.is_data() => {
                Err(ProxyError::BadRequest(format!("invalid LLM request: {e}")))
            }
            Err(e) => Err(ProxyError::BadRequest(format!(
                "invalid LLM request: the body is not JSON: {e}"
            ))),
        }
    }

    /// The raw JSON text of field `key`.
    pub fn raw(&self, key: &str) -> Option<&RawValue> {
        self.fields.get(key).map(AsRef::as_ref)
    }

    /// Field `key`'s bytes: a slice of `body` when the client wrote it, else a copy.
    pub fn raw_bytes(&self, key: &str, body: &bytes::Bytes) -> Option<bytes::Bytes> {
        match self.fields.get(key)? {
            Cow::Borrowed(raw) => Some(body.slice_ref(raw.get().as_bytes())),
            Cow::Owned(raw) => Some(bytes::Bytes::copy_from_slice(raw.get().as_bytes())),
        }
    }

    /// The request with a provider's `policies.ai` edits applied, in agentgateway's order:
    /// overrides, defaults, the model alias, then prompts (to chat `messages` in the client's
    /// `format`, or to a Responses `input`; embeddings and token counting get none).
    pub fn edited(
        &self,
        edits: &RequestEdits,
        format: Format,
        kind: RouteType,
    ) -> ClientRequest<'a> {
        let mut fields = self.fields.clone();
        for (name, value) in edits.overrides() {
            fields.insert(Cow::Owned(name.clone()), Cow::Owned(value.clone()));
        }
        for (name, value) in edits.defaults() {
            fields
                .entry(Cow::Owned(name.clone()))
                .or_insert_with(|| Cow::Owned(value.clone()));
        }
        let mut edited = ClientRequest { fields };
        if let Some(model) = edited.string("model")
            && let Some(alias) = edits.alias(&model)
        {
            let alias = serde_json::value::to_raw_value(alias).expect("a string serializes");
            edited
                .fields
                .insert(Cow::Borrowed("model"), Cow::Owned(alias));
        }
        if !edits.has_prompts() {
            return edited;
        }
        if kind == RouteType::Responses {
            if let Some(input) = edited
                .raw("input")
                .and_then(|i| edits.with_prompts_in_input(i))
            {
                edited
                    .fields
                    .insert(Cow::Borrowed("input"), Cow::Owned(input));
            }
        } else if matches!(kind, RouteType::Completions | RouteType::Messages)
            && let Some(messages) = edited.raw("messages")
            && let Some((messages, system)) =
                edits.with_prompts(format, messages, edited.raw("system"))
        {
            edited
                .fields
                .insert(Cow::Borrowed("messages"), Cow::Owned(messages));
            if let Some(system) = system {
                edited
                    .fields
                    .insert(Cow::Borrowed("system"), Cow::Owned(system));
            }
        }
        edited
    }

    /// Field `key` read as a `T`, or `None` when absent or of another type.
    fn read<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_str(self.raw(key)?.get()).ok()
    }

    pub fn string(&self, key: &str) -> Option<String> {
        self.read(key)
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.read(key)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.read(key)
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        self.read(key)
    }

    pub fn streaming(&self) -> bool {
        self.bool("stream") == Some(true)
    }

    /// `max_completion_tokens`, else `max_tokens`.
    /// agentgateway's `llm.params`: the sampling parameters the request sets.
    pub fn params(&self) -> serde_json::Map<String, Value> {
        const PARAMS: [&str; 8] = [
            "temperature",
            "top_p",
            "frequency_penalty",
            "presence_penalty",
            "seed",
            "max_tokens",
            "encoding_format",
            "dimensions",
        ];
        PARAMS
            .iter()
            .filter_map(|k| Some((k.to_string(), self.read::<Value>(k)?)))
            .collect()
    }

    pub fn max_tokens(&self) -> Option<u64> {
        self.u64("max_completion_tokens")
            .or_else(|| self.u64("max_tokens"))
    }

    /// The whole request as a tree, for translation into another API's format.
    fn tree(&self) -> Result<Value, InvalidRequest> {
        let mut out = Map::new();
        for (key, raw) in &self.fields {
            let value =
                serde_json::from_str(raw.get()).map_err(|e| InvalidRequest(e.to_string()))?;
            out.insert(key.to_string(), value);
        }
        Ok(Value::Object(out))
    }

    /// The upstream body, serialized: model replaced, translated when formats differ.
    pub fn upstream_body(
        &self,
        client: Format,
        upstream: Format,
        model: &str,
    ) -> Result<Vec<u8>, InvalidRequest> {
        let translated = match (client, upstream) {
            (Format::OpenAi, Format::Anthropic) => {
                translate::completions_to_messages(&self.tree()?, model)?
            }
            (Format::Anthropic, Format::OpenAi) => {
                translate::messages_to_completions(&self.tree()?, model)?
            }
            (Format::Responses, Format::Anthropic) => responses::to_messages(&self.tree()?, model)?,
            // Chat-only upstreams: through Messages, the one translation of Responses.
            (Format::Responses, _) => translate::messages_to_completions(
                &responses::to_messages(&self.tree()?, model)?,
                model,
            )?,
            (same, _) => return self.same_format_body(same, model),
        };
        Ok(translated.to_string().into_bytes())
    }

    /// What a translated Responses answer repeats of this request.
    pub fn responses_template(&self) -> Map<String, Value> {
        responses::template(|key| self.read(key))
    }

    /// The client's fields written back with only the model set: APIs the gateway forwards
    /// as they are (Responses, embeddings, token counting).
    pub fn with_model(&self, model: &str) -> Vec<u8> {
        let model = serde_json::value::to_raw_value(model).expect("a string serializes");
        let mut out: BTreeMap<&str, &RawValue> = self
            .fields
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        out.insert("model", &model);
        write_object(&out).expect("raw JSON fields serialize")
    }

    /// A request already in the upstream's format: the client's raw fields, written back with
    /// the gateway's fields set, in the same (sorted) key order.
    fn same_format_body(&self, format: Format, model: &str) -> Result<Vec<u8>, InvalidRequest> {
        let is_array = |raw: &RawValue| raw.get().trim_start().starts_with('[');
        if !self.raw("messages").is_some_and(is_array) {
            return Err(InvalidRequest(
                "missing field: `messages` must be an array".into(),
            ));
        }
        let model = serde_json::value::to_raw_value(model).expect("a string serializes");
        // Usage only arrives in OpenAI streams when asked for.
        let options = match self.raw("stream_options") {
            _ if format != Format::OpenAi || !self.streaming() => None,
            None => Some(Fields::new()),
            Some(raw) => Some(
                serde_json::from_str::<Option<BoundedFields<'_>>>(raw.get())
                    .map_err(|_| {
                        InvalidRequest(format!(
                            "`stream_options` must be an object of at most {MAX_FIELDS} fields"
                        ))
                    })?
                    .map(|BoundedFields(fields)| fields)
                    .unwrap_or_default(),
            ),
        }
        .map(|mut o| {
            o.insert("include_usage".into(), Cow::Borrowed(RawValue::TRUE));
            serde_json::value::to_raw_value(&o).expect("JSON fields")
        });
        let max_tokens =
            (format == Format::Anthropic && self.raw("max_tokens").is_none()).then(|| {
                serde_json::value::to_raw_value(&translate::DEFAULT_MAX_TOKENS)
                    .expect("a number serializes")
            });
        let mut out: BTreeMap<&str, &RawValue> = self
            .fields
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        out.insert("model", &model);
        if let Some(options) = &options {
            out.insert("stream_options", options);
        }
        if let Some(max_tokens) = &max_tokens {
            out.insert("max_tokens", max_tokens);
        }
        write_object(&out).map_err(|e| InvalidRequest(e.to_string()))
    }
}

/// Raw fields written as one JSON object into a buffer of the exact size when no key needs
/// escaping (`serde_json::to_vec` starts at 128 bytes and doubles: four copies of a 1 KiB
/// body), so the buffer also becomes `Bytes` without another allocation.
fn write_object(fields: &BTreeMap<&str, &RawValue>) -> serde_json::Result<Vec<u8>> {
    // `"key":value` and a comma each, less the last comma, and the braces.
    let size = fields
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum::<usize>()
        .saturating_sub(1)
        + 2;
    let mut out = Vec::with_capacity(size);
    serde_json::to_writer(&mut out, fields)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_written_into_a_buffer_of_its_exact_size() {
        let raw = |s: &str| RawValue::from_string(s.to_string()).unwrap();
        let (a, b) = (raw(r#"[{"role":"user"}]"#), raw("true"));
        for fields in [
            BTreeMap::new(),
            BTreeMap::from([("messages", &*a)]),
            BTreeMap::from([("messages", &*a), ("stream", &*b)]),
        ] {
            let out = write_object(&fields).unwrap();
            assert_eq!(out, serde_json::to_vec(&fields).unwrap());
            assert_eq!(
                out.capacity(),
                out.len(),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
        let escaped = BTreeMap::from([("a\"b", &*b)]);
        assert_eq!(write_object(&escaped).unwrap(), br#"{"a\"b":true}"#);
    }

    #[test]
    fn fields_are_written_back_verbatim_with_the_gateways_set() {
        let body = br#"{"stream":true,"messages":[ {"role":"user","content":"hi"} ],"model":"a","x":{"y":1}}"#;
        let req = ClientRequest::parse(body).unwrap();
        let out = req
            .upstream_body(Format::OpenAi, Format::OpenAi, "m")
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"messages":[ {"role":"user","content":"hi"} ],"model":"m","stream":true,"stream_options":{"include_usage":true},"x":{"y":1}}"#
        );
        let out = req
            .upstream_body(Format::Anthropic, Format::Anthropic, "m")
            .unwrap();
        assert!(
            std::str::from_utf8(&out)
                .unwrap()
                .contains(r#""max_tokens":4096"#)
        );
    }

    #[test]
    fn a_body_of_many_fields_or_not_an_object_is_refused() {
        let many: String = (0..=MAX_FIELDS).map(|i| format!("\"f{i}\":0,")).collect();
        let body = format!("{{{}}}", many.trim_end_matches(','));
        let err = ClientRequest::parse(body.as_bytes()).err().unwrap();
        assert!(
            err.to_string().contains("more than 256 top-level fields"),
            "{err}"
        );
        let err = ClientRequest::parse(b"[0,0]").err().unwrap();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
        let err = ClientRequest::parse(b"{\"a\":").err().unwrap();
        assert!(err.to_string().contains("the body is not JSON"), "{err}");
        // Found by fuzzing: a lone surrogate is well formed but not JSON text one can decode.
        let err = ClientRequest::parse(br#"{"messages":["\ud800"]}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("the body is not JSON"), "{err}");
    }

    #[test]
    fn scalars_of_another_type_read_as_absent() {
        let req =
            ClientRequest::parse(br#"{"max_tokens":"9","max_completion_tokens":7,"stream":1}"#)
                .unwrap();
        assert_eq!(req.max_tokens(), Some(7));
        assert!(!req.streaming());
        assert_eq!(req.string("model"), None);
    }
}
