//! The buckets of a request's caller: for each keyed `localRateLimit` entry, the bucket its
//! key (a CEL expression over the request and its identity) names.

use std::sync::Arc;

use serde_json::Value;

use crate::ratelimit::Bucket;
use crate::runtime::CompiledRoute;
use crate::telemetry::fields;
use crate::telemetry::record::RequestRecord;

/// One bucket per keyed entry of `route` (none when it has none: nothing is allocated).
pub fn caller_buckets(route: &CompiledRoute, record: &RequestRecord) -> Vec<Arc<Bucket>> {
    route
        .keyed_limits
        .iter()
        .map(|limit| {
            let ctx = fields::request_context(record, &limit.identity_members);
            let value = key_value(limit.key.execute(&ctx).ok());
            limit.buckets.bucket(value.as_deref())
        })
        .collect()
}

/// A key's value as a bucket name: strings as they are, other values as JSON; null, or an
/// expression that fails (a missing variable), is no key.
fn key_value(value: Option<cel::Value>) -> Option<String> {
    match value?.json().ok()? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::key_value;

    #[test]
    fn key_values() {
        let eval = |expr: &str| {
            let ctx = cel::Context::default();
            key_value(cel::Program::compile(expr).unwrap().execute(&ctx).ok())
        };
        assert_eq!(eval("'alice'").as_deref(), Some("alice"));
        assert_eq!(eval("42").as_deref(), Some("42"));
        assert_eq!(eval("null"), None);
        assert_eq!(eval("missing.field"), None);
    }
}
