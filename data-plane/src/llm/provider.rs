//! Where and how each provider is called: address, path, credentials, headers.

use http::{HeaderMap, HeaderValue, header};
use tollgate_shared::config::model::{
    AiProvider, AzureResourceType, BackendAuth, Provider, RouteType,
};

use super::vertex;

/// Sent when the client did not choose an Anthropic API version.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The wire format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI chat completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// The OpenAI Responses API: a client format only, served by upstreams of the others.
    Responses,
}

impl Format {
    /// The format `p` speaks for `model` (Vertex: Anthropic's for Anthropic models).
    pub fn of(p: Provider, model: &str) -> Format {
        match p {
            Provider::OpenAi | Provider::Gemini | Provider::Azure => Format::OpenAi,
            Provider::Vertex if vertex::anthropic_model(model).is_none() => Format::OpenAi,
            // Bedrock is reached through an adapter around Anthropic Messages (`bedrock`).
            Provider::Anthropic | Provider::Vertex | Provider::Bedrock => Format::Anthropic,
        }
    }
}

/// Whether the provider serves the Responses API itself (others are translated to).
pub fn has_responses_api(p: Provider) -> bool {
    matches!(p, Provider::OpenAi | Provider::Azure)
}

/// `gen_ai.system` / provider id used in telemetry.
pub fn system(p: Provider) -> &'static str {
    match p {
        Provider::OpenAi => "openai",
        Provider::Anthropic => "anthropic",
        Provider::Gemini => "gcp.gemini",
        Provider::Azure => "azure",
        Provider::Vertex => "gcp.vertex_ai",
        Provider::Bedrock => "aws.bedrock",
    }
}

/// Scheme and authority: the override over plain HTTP (TLS with a `backendTLS` policy), or
/// the provider's API over TLS.
pub fn base_url(p: &AiProvider, tls: bool) -> String {
    match (&p.host_override, p.provider) {
        (Some(h), _) if tls => format!("https://{h}"),
        (Some(h), _) => format!("http://{h}"),
        (None, Provider::OpenAi) => "https://api.openai.com".to_string(),
        (None, Provider::Anthropic) => "https://api.anthropic.com".to_string(),
        (None, Provider::Gemini) => "https://generativelanguage.googleapis.com".to_string(),
        (None, Provider::Azure) => match &p.azure {
            Some(a) if a.resource_type == AzureResourceType::Foundry => {
                format!("https://{}-resource.services.ai.azure.com", a.resource_name)
            }
            Some(a) => format!("https://{}.openai.azure.com", a.resource_name),
            None => "https://invalid.azure".to_string(),
        },
        (None, Provider::Vertex) => match &p.vertex {
            Some(v) => format!("https://{}", vertex::host(v)),
            None => "https://invalid.vertex".to_string(),
        },
        (None, Provider::Bedrock) => match &p.bedrock {
            Some(b) => super::bedrock::base_url(b),
            None => "https://invalid.bedrock".to_string(),
        },
    }
}

/// The provider's own path (and query) for a parsed operation on `model`: `pathOverride`
/// and `pathPrefix` apply to every operation, as agentgateway does; Azure's path is built from
/// its resource, API version and deployment (the model), Vertex's from its project, region,
/// model and whether the answer is `streaming`.
pub fn operation_path(p: &AiProvider, kind: RouteType, model: &str, streaming: bool) -> String {
    if let Some(o) = &p.path_override {
        return o.clone();
    }
    if let Some(v) = &p.vertex {
        let path = vertex::path(v, kind, model, streaming);
        return match &p.path_prefix {
            Some(prefix) => format!("{}{path}", prefix.trim_end_matches('/')),
            None => path,
        };
    }
    let suffix = match (kind, p.provider) {
        (RouteType::Responses, _) => "/responses",
        (RouteType::Embeddings, _) => "/embeddings",
        (RouteType::AnthropicTokenCount, _) => "/messages/count_tokens",
        (_, Provider::Anthropic) => "/messages",
        (_, _) => "/chat/completions",
    };
    if let (Some(a), None) = (&p.azure, &p.path_prefix) {
        return match (a.resource_type, a.api_version.as_str()) {
            (AzureResourceType::Foundry, _) => {
                let project = a.project_name.as_deref().unwrap_or(&a.resource_name);
                format!("/api/projects/{project}/openai/v1{suffix}")
            }
            (_, "v1") => format!("/openai/v1{suffix}"),
            (_, "preview") => format!("/openai/v1{suffix}?api-version=preview"),
            (_, version) => format!("/openai/deployments/{model}{suffix}?api-version={version}"),
        };
    }
    format!("{}{suffix}", base_path(p).trim_end_matches('/'))
}

/// The API's base path: `pathPrefix`, else the provider's (`/v1`, Gemini's `/v1beta/openai`).
fn base_path(p: &AiProvider) -> &str {
    p.path_prefix.as_deref().unwrap_or(match p.provider {
        Provider::Gemini => "/v1beta/openai",
        Provider::OpenAi
        | Provider::Anthropic
        | Provider::Azure
        | Provider::Vertex
        | Provider::Bedrock => "/v1",
    })
}

/// The client's path and query for passthrough, with the provider's base path (`pathPrefix`,
/// or Gemini's) replacing the `/v1` base.
pub fn passthrough_path(p: &AiProvider, path_and_query: &str) -> String {
    if let Some(o) = &p.path_override {
        return o.clone();
    }
    if p.path_prefix.is_none() && p.provider != Provider::Gemini {
        return path_and_query.to_string();
    }
    // Only the `/v1` segment is the base: `/v1beta/...` is another API's path.
    let Some(rest) = path_and_query
        .strip_prefix("/v1")
        .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
    else {
        return path_and_query.to_string();
    };
    format!("{}{rest}", base_path(p).trim_end_matches('/'))
}

/// Puts the key where the provider expects it, replacing the client's own credentials, and
/// adds the headers the provider requires.
/// Without a configured key the client's credentials go through (an Anthropic bearer token
/// moves to `x-api-key`).
pub fn apply_auth(p: Provider, auth: Option<&BackendAuth>, headers: &mut HeaderMap) {
    let client_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    match p {
        Provider::Azure => {
            if let Some(key) = auth.and_then(BackendAuth::key)
                && let Ok(v) = HeaderValue::from_str(key.expose())
            {
                headers.remove(header::AUTHORIZATION);
                headers.insert("api-key", v);
            }
        }
        // Bedrock: an API key is a bearer token; `backendAuth.aws` signs the request later.
        Provider::OpenAi | Provider::Gemini | Provider::Vertex | Provider::Bedrock => {
            if let Some(key) = auth.and_then(BackendAuth::key)
                && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            {
                headers.remove("x-api-key");
                headers.insert(header::AUTHORIZATION, v);
            }
        }
        Provider::Anthropic => {
            let key = auth
                .and_then(BackendAuth::key)
                .map(|k| k.expose().to_string())
                .or(client_bearer);
            if let Some(v) = key.and_then(|k| HeaderValue::from_str(&k).ok()) {
                headers.remove(header::AUTHORIZATION);
                headers.insert("x-api-key", v);
            }
            if !headers.contains_key("anthropic-version") {
                headers.insert(
                    "anthropic-version",
                    HeaderValue::from_static(ANTHROPIC_VERSION),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_shared::config::model::Secret;

    fn provider(kind: Provider, prefix: Option<&str>) -> AiProvider {
        AiProvider {
            path_prefix: prefix.map(str::to_string),
            ..AiProvider::named("p", kind)
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            operation_path(
                &provider(Provider::OpenAi, None),
                RouteType::Completions,
                "m",
                false
            ),
            "/v1/chat/completions"
        );
        assert_eq!(
            operation_path(
                &provider(Provider::Anthropic, Some("/api/")),
                RouteType::Messages,
                "m",
                false
            ),
            "/api/messages"
        );
        assert_eq!(
            operation_path(
                &provider(Provider::OpenAi, None),
                RouteType::Responses,
                "m",
                false
            ),
            "/v1/responses"
        );
        assert_eq!(
            operation_path(
                &provider(Provider::Anthropic, None),
                RouteType::AnthropicTokenCount,
                "m",
                false
            ),
            "/v1/messages/count_tokens"
        );
        assert_eq!(
            passthrough_path(&provider(Provider::OpenAi, Some("/x")), "/v1/models?a=1"),
            "/x/models?a=1"
        );
        assert_eq!(
            base_url(&provider(Provider::Anthropic, None), false),
            "https://api.anthropic.com"
        );
        let gemini = provider(Provider::Gemini, None);
        assert_eq!(
            operation_path(&gemini, RouteType::Messages, "m", false),
            "/v1beta/openai/chat/completions"
        );
        assert_eq!(
            operation_path(&gemini, RouteType::Embeddings, "m", false),
            "/v1beta/openai/embeddings"
        );
        assert_eq!(
            passthrough_path(&gemini, "/v1/models"),
            "/v1beta/openai/models"
        );
        assert_eq!(
            passthrough_path(&gemini, "/v1beta/models/g:generateContent"),
            "/v1beta/models/g:generateContent"
        );
        assert_eq!(
            base_url(&gemini, false),
            "https://generativelanguage.googleapis.com"
        );
        let azure = |resource_type, api_version: &str| AiProvider {
            azure: Some(tollgate_shared::config::model::Azure {
                resource_name: "acme".into(),
                resource_type,
                api_version: api_version.into(),
                project_name: None,
            }),
            ..provider(Provider::Azure, None)
        };
        let v1 = azure(AzureResourceType::OpenAi, "v1");
        assert_eq!(base_url(&v1, false), "https://acme.openai.azure.com");
        assert_eq!(
            operation_path(&v1, RouteType::Completions, "gpt-4o", false),
            "/openai/v1/chat/completions"
        );
        assert_eq!(
            operation_path(
                &azure(AzureResourceType::OpenAi, "2024-10-21"),
                RouteType::Embeddings,
                "emb",
                false
            ),
            "/openai/deployments/emb/embeddings?api-version=2024-10-21"
        );
        let foundry = azure(AzureResourceType::Foundry, "v1");
        assert_eq!(
            base_url(&foundry, false),
            "https://acme-resource.services.ai.azure.com"
        );
        assert_eq!(
            operation_path(&foundry, RouteType::Responses, "m", false),
            "/api/projects/acme/openai/v1/responses"
        );
    }

    #[test]
    fn anthropic_auth_replaces_client_credentials() {
        let auth = BackendAuth::Key(Secret::new("sk-ant".into(), None));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer client"),
        );
        h.insert("x-api-key", HeaderValue::from_static("client-key"));
        apply_auth(Provider::Anthropic, Some(&auth), &mut h);
        assert_eq!(h["x-api-key"], "sk-ant");
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert_eq!(h["anthropic-version"], ANTHROPIC_VERSION);
    }

    #[test]
    fn openai_auth_is_a_bearer_token() {
        let auth = BackendAuth::Key(Secret::new("sk-oai".into(), None));
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("client-key"));
        apply_auth(Provider::OpenAi, Some(&auth), &mut h);
        assert_eq!(h[header::AUTHORIZATION], "Bearer sk-oai");
        assert!(h.get("x-api-key").is_none());
    }
}
