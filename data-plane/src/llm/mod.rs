//! LLM backends (DESIGN §5): route types, provider choice with failover, translation between
//! OpenAI chat completions and Anthropic Messages, the APIs forwarded as they are (Responses,
//! embeddings, token counting, `detect`), and token usage.

pub mod bedrock;
pub mod credentials;
pub mod edit;
pub mod failover;
pub mod provider;
pub mod request;
pub mod responses;
pub mod stream;
pub mod translate;
pub mod usage;
pub mod vertex;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyDataStream, BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tollgate_shared::config::model::{BackendAuth, Policies, Provider, RateLimitKind, RouteType};

use self::failover::{ProviderId, ProviderPool};
use self::provider::Format;
use self::request::ClientRequest;
use self::stream::Translate;
use self::usage::Usage;
use crate::health::{self, Answer};
use crate::http::body::{BoxBody, BoxError, full};
use crate::http::budget::ParseBudget;
use crate::http::client::{HttpClient, Limits, send_to};
use crate::http::error::ProxyError;
use crate::http::retry::{self, Attempt};
use crate::http::strip_hop_by_hop;
use crate::metrics::Metrics;
use crate::ratelimit::{self, Bucket, Reservation};
use crate::series::GenAi;
use crate::telemetry::RequestLabels;
use crate::telemetry::record::{LlmFacts, RequestRecord};

/// Largest upstream answer the gateway reads whole (non-streamed LLM responses, errors).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// How many bytes of large client requests the process holds parsed at once (a JSON tree
/// costs up to ~30 times its bytes): past it, large requests wait their turn.
pub const LARGE_REQUESTS_BUDGET: u32 = 16 * 1024 * 1024;

/// The process-wide budget of large LLM request bytes, shared by every LLM route.
pub fn budget() -> ParseBudget {
    ParseBudget::new(LARGE_REQUESTS_BUDGET)
}

/// Everything one LLM request needs from the gateway and its route.
pub struct AiCall<'a> {
    pub client: &'a HttpClient,
    pub metrics: &'a Arc<Metrics>,
    /// The route's name, policies and rate-limit buckets.
    pub route_name: &'a str,
    /// The route's labels, with the series its exchanges record into.
    pub labels: &'a Arc<RequestLabels>,
    pub policies: &'a Policies,
    pub buckets: &'a [Arc<Bucket>],
    pub pool: &'a ProviderPool,
    pub limits: Limits,
    pub record: &'a Arc<RequestRecord>,
    /// Bytes of large requests parsed at once, process-wide.
    pub budget: &'a ParseBudget,
    /// The route's `authorization` rules when they read `llm.*`: decided once the request
    /// is parsed, before any provider is called.
    pub authorization: Option<&'a crate::authz::Rules>,
    /// Called with the provider's name before each retry.
    pub on_retry: &'a (dyn Fn(&str) + Sync),
}

/// The answer and the provider that gave it.
pub struct Served {
    pub response: Response<BoxBody>,
    pub provider: Option<Arc<str>>,
}

/// How one attempt talks to its provider.
struct Plan {
    path: String,
    body: Bytes,
    reading: Reading,
    /// The gateway wrote the body (as JSON).
    rewritten: bool,
    exchange: Option<Exchange>,
    /// Passthrough only: the route's token-type buckets, debited with the answer's usage
    /// (other exchanges settle their reservation instead).
    passthrough_buckets: Vec<Arc<Bucket>>,
    /// A translated Responses request: what its answer repeats of it.
    responses_template: Option<serde_json::Map<String, Value>>,
    /// The model, when the upstream speaks Bedrock's Converse (answers adapted to Anthropic's).
    converse: Option<String>,
}

#[expect(
    clippy::disallowed_methods,
    reason = "attempt latencies (metrics, provider choice) are wall time"
)]
pub async fn serve(
    call: AiCall<'_>,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Served, ProxyError> {
    let call = &call;
    let retry = call.policies.retry.as_ref();
    // The body's share of the budget is held as long as it is parsed.
    let share = call.budget.take(body.len()).await;
    let mut parsed: Option<ClientRequest<'_>> = None;
    let mut reservation: Option<Arc<Reservation>> = None;
    let mut tried: Vec<ProviderId> = Vec::new();
    // Failover is the retry loop's policy: each attempt goes to a provider not tried yet.
    let policy = retry::Policy {
        retry,
        route: call.route_name,
        // Providers that speak the request's API first; when none is left, one that does not
        // answers why.
        next: || {
            let serves = |id| serves(call, parts.uri.path(), id);
            let id = call
                .pool
                .choose_where(&tried, serves)
                .or_else(|| call.pool.choose_where(&[], serves))
                .or_else(|| call.pool.choose(&tried))
                .or_else(|| call.pool.choose(&[]))?;
            tried.push(id);
            Some(id)
        },
        before_retry: |id| (call.on_retry)(&call.pool.get(id).provider.name),
    };
    let answer = retry::run(policy, |id, attempt| {
        let prepared = prepare(call, &parts, &body, &mut parsed, &mut reservation, id, attempt);
        async move {
            let Some((plan, mut request)) = prepared? else {
                return Ok(Attempt::Local(None));
            };
            let state = call.pool.get(id);
            let provider = &state.provider;
            if let Some(tokens) = &state.tokens {
                tokens.authorize(request.headers_mut()).await.map_err(|reason| {
                    call.pool.record(id, Answer::None);
                    ProxyError::ProviderCredentials {
                        provider: provider.name.clone(),
                        reason,
                    }
                })?;
            }
            let started = Instant::now();
            let client = state.backend_tls.as_ref().map_or(call.client, |c| &c.http);
            let resp = send_to(
                client,
                &provider.name,
                &provider.name,
                request,
                call.limits,
                call.record,
            )
            .await
            .inspect_err(|e| {
                if e.is_retryable() {
                    call.pool.record(id, Answer::None);
                }
            })?;
            let status = resp.status();
            let answer = Answer::Status(status.as_u16(), health::retry_after(resp.headers()));
            if let Some(out) = call.pool.record(id, answer) {
                tracing::warn!(provider = %provider.name, status = status.as_u16(), evicted_for = ?out, "provider evicted");
            } else if status.as_u16() < 500 && status != StatusCode::TOO_MANY_REQUESTS {
                call.pool.record_latency(id, started.elapsed());
            }
            let name: Arc<str> = provider.name.as_str().into();
            Ok(Attempt::Answered(status, Some((resp, plan, name))))
        }
    })
    .await?;
    drop(parsed);
    drop(share);
    // The final answer is read (and translated) only now; `None` is `/v1/models`.
    match answer {
        Some((resp, plan, name)) => {
            let resp = resp.map(|b| b.map_err(BoxError::from).boxed_unsync());
            let resp = match &plan.converse {
                Some(model) => bedrock::to_anthropic(resp, model, &name).await?,
                None => resp,
            };
            Ok(Served {
                response: respond(resp, &plan, &name).await?,
                provider: Some(name),
            })
        }
        None => Ok(Served {
            response: models(call.pool),
            provider: None,
        }),
    }
}

/// The route's `llm.*` authorization, with what is known of the request (the model the client
/// asked for).
fn authorize(call: &AiCall<'_>, llm: Option<&LlmFacts>) -> Result<(), ProxyError> {
    let Some(rules) = call.authorization else {
        return Ok(());
    };
    if rules.allows_request(call.record, llm) {
        Ok(())
    } else {
        Err(ProxyError::Forbidden("authorization"))
    }
}

/// How the gateway reads an answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Not at all (passthrough, token counting).
    Untouched,
    /// Forwarded unchanged, usage read (Responses, embeddings, `detect`); `responses` says
    /// whether a broken stream ends with a Responses `error` event.
    Observed { responses: bool },
    /// Chat in the client's format and the upstream's, translated when they differ.
    Chat(Format, Format),
}

/// Whether provider `id` speaks the API of a request to `path` (for Vertex, with the
/// provider's model; a model the client names is checked once it is known).
fn serves(call: &AiCall<'_>, path: &str, id: ProviderId) -> bool {
    let state = call.pool.get(id);
    let p = &state.provider;
    let upstream = Format::of(p.provider, p.model.as_deref().unwrap_or_default());
    unsupported(route_type(&state.policies, path), p.provider, upstream).is_none()
}

/// The route type of a request to `path` under a provider's policies.
fn route_type(policies: &Policies, path: &str) -> RouteType {
    policies
        .ai
        .as_ref()
        .and_then(|a| a.routes.as_ref())
        .map_or(RouteType::Completions, |m| m.classify(path))
}

/// Why a provider speaking `upstream` cannot serve an API, or `None` when it can.
fn unsupported(kind: RouteType, provider: Provider, upstream: Format) -> Option<&'static str> {
    if provider == Provider::Bedrock
        && !matches!(
            kind,
            RouteType::Completions | RouteType::Messages | RouteType::Responses
        )
    {
        return Some(
            "the bedrock provider serves chat (route types `completions`, `messages` and `responses`) through Bedrock's Converse API",
        );
    }
    if (kind, provider) == (RouteType::Embeddings, Provider::Vertex) {
        return Some(
            "embeddings on Vertex (its `predict` API) are not supported: route `embeddings` to an openAI provider",
        );
    }
    match (kind, upstream) {
        (RouteType::Embeddings, Format::Anthropic) => {
            Some("Anthropic has no embeddings API: route `embeddings` to an openAI provider")
        }
        (RouteType::AnthropicTokenCount, Format::OpenAi) => Some(
            "token counting is Anthropic's API: route `anthropicTokenCount` to an anthropic provider",
        ),
        _ => None,
    }
}

/// The plan and request of attempt `attempt` on provider `id`, or `None` for `/v1/models`,
/// which the gateway answers itself. The client's body is parsed, and its tokens reserved,
/// once, when first needed.
fn prepare<'b>(
    call: &AiCall<'_>,
    parts: &http::request::Parts,
    body: &'b Bytes,
    parsed: &mut Option<ClientRequest<'b>>,
    reservation: &mut Option<Arc<Reservation>>,
    id: ProviderId,
    attempt: u32,
) -> Result<Option<(Plan, Request<BoxBody>)>, ProxyError> {
    let path = parts.uri.path();
    let pq = parts.uri.path_and_query().map_or(path, |p| p.as_str());
    let state = call.pool.get(id);
    let provider = &state.provider;
    let kind = route_type(&state.policies, path);
    // Every path of the route draws on the same token buckets (DESIGN §5); a retry does not
    // pay again for what its request reserved. Counting tokens spends none (as agentgateway).
    if reservation.is_none() && kind != RouteType::AnthropicTokenCount {
        ratelimit::admit_tokens(call.buckets).map_err(ProxyError::RateLimited)?;
    }
    // Requests that are not parsed have no `llm` for the rules: those reading it are false.
    if attempt == 0 && matches!(kind, RouteType::Models | RouteType::Passthrough) {
        authorize(call, None)?;
    }
    if kind != RouteType::Models
        && let Some(key) = state
            .policies
            .backend_auth
            .as_ref()
            .and_then(BackendAuth::key)
        && key.expose().is_empty()
    {
        let variables = key.variables();
        let fix = if variables.is_empty() {
            "its backendAuth key is empty".to_string()
        } else {
            format!(
                "set {} in the gateway's environment and restart it",
                variables.join(" or ")
            )
        };
        return Err(ProxyError::ProviderKeyMissing {
            provider: provider.name.clone(),
            fix,
        });
    }
    let plan = match kind {
        RouteType::Models => return Ok(None),
        RouteType::Passthrough => Plan {
            path: provider::passthrough_path(provider, pq),
            body: body.clone(),
            reading: Reading::Untouched,
            rewritten: false,
            exchange: None,
            passthrough_buckets: token_buckets(call),
            responses_template: None,
            converse: None,
        },
        RouteType::Detect => {
            // Read when it is JSON; forwarded as is either way.
            let request = ClientRequest::parse(body).ok();
            let model = request
                .as_ref()
                .and_then(|r| r.string("model"))
                .or_else(|| provider.model.clone());
            let facts = request
                .as_ref()
                .zip(model.clone())
                .map(|(r, m)| request_facts(provider, r, m));
            authorize(call, facts.as_ref())?;
            // Without a model to account to, the answer is metered like passthrough.
            let exchange = match (request, model) {
                (Some(request), Some(model)) => Some(exchange(
                    call,
                    provider,
                    kind,
                    &request,
                    body,
                    model,
                    reservation,
                )?),
                _ => None,
            };
            Plan {
                path: provider::passthrough_path(provider, pq),
                body: body.clone(),
                reading: Reading::Observed { responses: false },
                rewritten: false,
                passthrough_buckets: if exchange.is_none() {
                    token_buckets(call)
                } else {
                    Vec::new()
                },
                exchange,
                responses_template: None,
                converse: None,
            }
        }
        RouteType::Completions
        | RouteType::Messages
        | RouteType::Responses
        | RouteType::Embeddings
        | RouteType::AnthropicTokenCount => {
            let client = match kind {
                RouteType::Messages | RouteType::AnthropicTokenCount => Format::Anthropic,
                RouteType::Responses => Format::Responses,
                _ => Format::OpenAi,
            };
            if parsed.is_none() {
                *parsed = Some(ClientRequest::parse(body)?);
            }
            let request = parsed.as_ref().expect("parsed above");
            let edited = state
                .edits
                .as_ref()
                .map(|e| request.edited(e, client, kind));
            let request = edited.as_ref().unwrap_or(request);
            // Every attempt: a failover to another provider is decided for that provider.
            if call.authorization.is_some() {
                let requested = request.string("model").or_else(|| provider.model.clone());
                let facts = requested.map(|m| LlmFacts {
                    params: request.params(),
                    ..request_facts(provider, request, m)
                });
                authorize(call, facts.as_ref())?;
            }
            let model = provider
                .model
                .clone()
                .or_else(|| request.string("model"))
                .ok_or_else(|| {
                    ProxyError::BadRequest(
                        "invalid LLM request: missing field: model not specified".into(),
                    )
                })?;
            let upstream = Format::of(provider.provider, &model);
            if let Some(why) = unsupported(kind, provider.provider, upstream) {
                return Err(ProxyError::BadRequest(why.into()));
            }
            // Responses go as they are to providers with the API, translated to the others.
            let translated =
                kind == RouteType::Responses && !provider::has_responses_api(provider.provider);
            let chat = translated || matches!(kind, RouteType::Completions | RouteType::Messages);
            let out = if chat {
                request
                    .upstream_body(client, upstream, &model)
                    .map_err(|e| ProxyError::BadRequest(format!("invalid LLM request: {e}")))?
            } else {
                request.with_model(&model)
            };
            // A translated request goes to the upstream's chat API.
            let operation = if translated {
                RouteType::Completions
            } else {
                kind
            };
            let out = vertex::upstream_body(provider.provider, operation, upstream, out)
                .map_err(|e| ProxyError::BadRequest(format!("invalid LLM request: {e}")))?;
            let (path, out) = match &provider.bedrock {
                Some(b) if chat => {
                    bedrock::converse_request(provider, b, &out, &model, request.streaming())?
                }
                _ => {
                    let path =
                        provider::operation_path(provider, operation, &model, request.streaming());
                    (path, out)
                }
            };
            let converse = provider.bedrock.is_some().then(|| model.clone());
            let exchange = (kind != RouteType::AnthropicTokenCount)
                .then(|| exchange(call, provider, kind, request, body, model, reservation))
                .transpose()?;
            Plan {
                path,
                body: Bytes::from(out),
                reading: match kind {
                    _ if chat => Reading::Chat(client, upstream),
                    RouteType::AnthropicTokenCount => Reading::Untouched,
                    _ => Reading::Observed {
                        responses: kind == RouteType::Responses,
                    },
                },
                rewritten: true,
                exchange,
                passthrough_buckets: Vec::new(),
                responses_template: translated.then(|| request.responses_template()),
                converse,
            }
        }
    };
    let auth = state.policies.backend_auth.as_ref();
    let tls = state.backend_tls.is_some();
    let request = upstream_request(parts, provider, auth, tls, &plan, attempt)?;
    Ok(Some((plan, request)))
}

/// The route's token-type buckets, debited with an answer's usage when no reservation was
/// taken for it.
fn token_buckets(call: &AiCall<'_>) -> Vec<Arc<Bucket>> {
    call.buckets
        .iter()
        .filter(|b| b.limit.kind == RateLimitKind::Tokens)
        .cloned()
        .collect()
}

/// What the route's `llm.*` rules know of a parsed request.
fn request_facts(
    provider: &tollgate_shared::config::model::AiProvider,
    request: &ClientRequest<'_>,
    request_model: String,
) -> LlmFacts {
    LlmFacts {
        provider: provider::system(provider.provider),
        request_model,
        streaming: request.streaming(),
        ..LlmFacts::default()
    }
}

/// The exchange of a parsed request of type `kind` to `model`: its tokens (the prompt
/// estimated from the body's size, plus the most output it asked for, or a default) are
/// reserved once for all attempts.
#[expect(
    clippy::disallowed_methods,
    reason = "a streamed answer's duration is wall time"
)]
fn exchange(
    call: &AiCall<'_>,
    provider: &tollgate_shared::config::model::AiProvider,
    kind: RouteType,
    request: &ClientRequest<'_>,
    body: &Bytes,
    model: String,
    reservation: &mut Option<Arc<Reservation>>,
) -> Result<Exchange, ProxyError> {
    let embeddings = kind == RouteType::Embeddings;
    let max_tokens = match kind {
        RouteType::Responses => request.u64("max_output_tokens"),
        RouteType::Embeddings => None,
        _ => request.max_tokens(),
    };
    let prompt_estimate = usage::estimate(body.len());
    let reservation = match reservation {
        Some(r) => r.clone(),
        None => {
            let output = match max_tokens {
                _ if embeddings => 0,
                Some(max) => max,
                None => translate::DEFAULT_MAX_TOKENS,
            };
            let estimate = prompt_estimate.saturating_add(output);
            let taken =
                Reservation::take(call.buckets, estimate).map_err(ProxyError::RateLimited)?;
            reservation.insert(Arc::new(taken)).clone()
        }
    };
    let prompt = ["messages", "input"]
        .into_iter()
        .find_map(|field| request.raw_bytes(field, body));
    // The prompt, parameters and completion are kept only when CEL may read them.
    let keep = call.record.headers.is_some();
    Ok(Exchange {
        reservation,
        metrics: call.metrics.clone(),
        facts: LlmFacts {
            prompt: keep.then_some(prompt).flatten(),
            params: if keep {
                request.params()
            } else {
                Default::default()
            },
            completion: keep.then(Vec::new),
            temperature: request.f64("temperature"),
            max_tokens,
            ..request_facts(provider, request, model)
        },
        record: call.record.clone(),
        started: Instant::now(),
        labels: call.labels.clone(),
        prompt_estimate,
        operation: if embeddings { "embeddings" } else { "chat" },
    })
}

fn upstream_request(
    parts: &http::request::Parts,
    p: &tollgate_shared::config::model::AiProvider,
    auth: Option<&BackendAuth>,
    tls: bool,
    plan: &Plan,
    attempt: u32,
) -> Result<Request<BoxBody>, ProxyError> {
    let mut url = provider::base_url(p, tls);
    url.push_str(&plan.path);
    let uri = http::Uri::try_from(url)
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the upstream URI: {e}")))?;
    let mut req = Request::new(full(plan.body.clone()));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    *headers = parts.headers.clone();
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    if plan.reading != Reading::Untouched {
        // The gateway reads these answers, so they must arrive uncompressed.
        headers.remove(header::ACCEPT_ENCODING);
    }
    if plan.rewritten {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    provider::apply_auth(p.provider, auth, headers);
    retry::mark_attempt(headers, attempt);
    if let Some(BackendAuth::Aws(aws)) = auth {
        bedrock::sign_request(&mut req, &plan.body, aws, p)?;
    }
    Ok(req)
}

/// `/v1/models` answered by the gateway with the configured models (OpenAI's list format).
fn models(pool: &ProviderPool) -> Response<BoxBody> {
    let mut data: Vec<Value> = Vec::new();
    for p in pool.providers() {
        if let Some(m) = &p.model
            && !data.iter().any(|d| d["id"] == m.as_str())
        {
            data.push(json!({"id": m, "object": "model", "created": 0, "owned_by": provider::system(p.provider)}));
        }
    }
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

fn json_response(status: StatusCode, v: &Value) -> Response<BoxBody> {
    let mut resp = Response::new(full(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The whole answer, at most [`MAX_UPSTREAM_BODY`] bytes.
async fn read_all(mut body: BoxBody, provider: &str) -> Result<Bytes, ProxyError> {
    let failed = |reason: String| ProxyError::UpstreamProtocol {
        backend: provider.to_string(),
        reason: format!("reading the answer failed: {reason}"),
    };
    // An answer that arrives in one frame (most do) is passed on without a copy.
    let mut first: Option<Bytes> = None;
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            let held = first.as_ref().map_or(0, Bytes::len);
            if held + out.len() + data.len() > MAX_UPSTREAM_BODY {
                return Err(failed("length limit exceeded".into()));
            }
            if first.is_none() && out.is_empty() {
                first = Some(data);
            } else {
                if let Some(earlier) = first.take() {
                    out.extend_from_slice(&earlier);
                }
                out.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| out.freeze()))
}

/// Response processing: errors reshaped for the client, bodies translated, usage recorded.
async fn respond(
    resp: Response<BoxBody>,
    plan: &Plan,
    provider: &str,
) -> Result<Response<BoxBody>, ProxyError> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = http::Version::default();
    let status = parts.status;
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let (client, upstream_format) = match plan.reading {
        Reading::Chat(client, upstream) => (client, upstream),
        Reading::Observed { responses } if status.is_success() => {
            return observed(parts, body, plan, provider, is_sse, responses).await;
        }
        Reading::Untouched | Reading::Observed { .. } => {
            return Ok(untouched(parts, body, plan, is_sse));
        }
    };
    if !status.is_success() {
        let bytes = read_all(body, provider).await?;
        // An error wrapped in an array (Google's shims) is no error object for the client.
        if client == upstream_format && !bytes.starts_with(b"[") {
            parts.headers.remove(header::CONTENT_LENGTH);
            return Ok(Response::from_parts(parts, full(bytes)));
        }
        let (message, kind) = translate::error_parts(&bytes);
        let shaped = match client {
            Format::OpenAi | Format::Responses => translate::openai_error(&message, &kind),
            Format::Anthropic => translate::anthropic_error(
                &message,
                translate::anthropic_error_type(status.as_u16()),
            ),
        };
        return Ok(json_response(status, &shaped));
    }
    let exchange = plan.exchange.clone();
    if is_sse {
        // An upstream that is not Anthropic speaks OpenAI chat.
        let template = || plan.responses_template.clone().unwrap_or_default();
        let translator: Box<dyn Translate> = match (client, upstream_format) {
            (Format::Anthropic, Format::Anthropic) => {
                Box::<stream::AnthropicPassthrough>::default()
            }
            (Format::OpenAi, Format::Anthropic) => {
                Box::new(stream::AnthropicToOpenAi::new(unix_now()))
            }
            (Format::Anthropic, _) => Box::<stream::OpenAiToAnthropic>::default(),
            (Format::Responses, Format::Anthropic) => Box::new(
                responses::stream::AnthropicToResponses::new(template(), unix_now()),
            ),
            (Format::Responses, _) => Box::new(stream::Chain::new(
                Box::<stream::OpenAiToAnthropic>::default(),
                Box::new(responses::stream::AnthropicToResponses::new(
                    template(),
                    unix_now(),
                )),
            )),
            (Format::OpenAi, _) => Box::<stream::OpenAiPassthrough>::default(),
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        parts
            .headers
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(Response::from_parts(
            parts,
            translated_stream(body, translator, exchange),
        ));
    }
    let bytes = read_all(body, provider).await?;
    let bad = |reason: String| ProxyError::UpstreamProtocol {
        backend: provider.to_string(),
        reason,
    };
    let mut usage = Usage::default();
    let not_json = |e: serde_json::Error| bad(format!("the answer is not JSON ({e})"));
    let out = if client == upstream_format {
        // Same format: checked and measured in one pass, then the upstream's bytes go back
        // unchanged.
        let answer = usage::answer(&bytes, &mut usage).map_err(not_json)?;
        match client {
            Format::OpenAi if !answer.has_choices => {
                return Err(bad(
                    "not a valid answer: an OpenAI completion without `choices`".into(),
                ));
            }
            Format::Anthropic if !answer.has_content => {
                return Err(bad(
                    "not a valid answer: an Anthropic message without `content`".into(),
                ));
            }
            _ => {}
        }
        None
    } else {
        let value: Value = serde_json::from_slice(&bytes).map_err(not_json)?;
        usage::probe_value(&value, &mut usage);
        let translated = match client {
            Format::OpenAi => translate::messages_response_to_completion(&value, unix_now()),
            Format::Anthropic => translate::completion_to_messages_response(&value),
            Format::Responses => {
                let message = match upstream_format {
                    Format::Anthropic => Ok(value),
                    _ => translate::completion_to_messages_response(&value),
                };
                let template = plan.responses_template.as_ref();
                message.and_then(|m| {
                    responses::from_message(&m, template.unwrap_or(&Default::default()), unix_now())
                })
            }
        };
        Some(translated.map_err(|e| bad(format!("not a valid answer: {e}")))?)
    };
    if let Some(mut ex) = exchange {
        if let Some(texts) = ex.facts.completion.as_mut() {
            *texts = usage::completion(&bytes);
        }
        ex.finish(&usage);
    }
    match out {
        Some(v) => Ok(json_response(status, &v)),
        None => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Ok(Response::from_parts(parts, full(bytes)))
        }
    }
}

/// An answer forwarded as it is: passthrough answers metered for the route's token buckets.
fn untouched(
    parts: http::response::Parts,
    body: BoxBody,
    plan: &Plan,
    is_sse: bool,
) -> Response<BoxBody> {
    let body = if plan.passthrough_buckets.is_empty() || !parts.status.is_success() {
        body
    } else {
        usage::Metered::new(body, is_sse, plan.passthrough_buckets.clone()).boxed_unsync()
    };
    Response::from_parts(parts, body)
}

/// A successful answer forwarded unchanged, its usage read: streams event by event, other
/// bodies whole.
async fn observed(
    mut parts: http::response::Parts,
    body: BoxBody,
    plan: &Plan,
    provider: &str,
    is_sse: bool,
    responses: bool,
) -> Result<Response<BoxBody>, ProxyError> {
    let Some(exchange) = plan.exchange.clone() else {
        return Ok(untouched(parts, body, plan, is_sse));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    if is_sse {
        let translator = Box::new(stream::Observed::new(responses));
        return Ok(Response::from_parts(
            parts,
            translated_stream(body, translator, Some(exchange)),
        ));
    }
    let bytes = read_all(body, provider).await?;
    let mut usage = Usage::default();
    // Not the route's format to check: an answer that is not JSON is forwarded, unmeasured.
    let _ = usage::answer(&bytes, &mut usage);
    let mut exchange = exchange;
    if let Some(texts) = exchange.facts.completion.as_mut() {
        *texts = usage::completion(&bytes);
    }
    exchange.finish(&usage);
    Ok(Response::from_parts(parts, full(bytes)))
}

/// What the stream body owns; reports usage exactly once, on end or drop.
struct StreamState {
    events: futures_util::stream::BoxStream<'static, Result<sse_parse::Event, String>>,
    translator: Box<dyn Translate>,
    queue: VecDeque<Bytes>,
    finished: bool,
    exchange: Option<Exchange>,
    /// Bytes of generated text received so far, estimated if the stream is cut (with those
    /// the translator counts itself).
    streamed_text: usize,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if let Some(ex) = self.exchange.take() {
            let core = self.translator.core();
            if core.done {
                ex.finish(&core.usage);
            } else {
                ex.finish_cut(&core.usage, self.streamed_text + core.text);
            }
        }
    }
}

impl StreamState {
    fn handle(&mut self, next: Option<Result<sse_parse::Event, String>>) {
        match next {
            Some(Ok(ev)) => {
                if let Some(ex) = self.exchange.as_mut() {
                    if !self.translator.counts_text() {
                        self.streamed_text += usage::streamed_text(&ev.data);
                    }
                    if let Some(texts) = ex.facts.completion.as_mut() {
                        usage::append_streamed(&ev.data, texts);
                    }
                }
                self.translator.event(&ev, &mut self.queue);
                self.finished = self.translator.core().done;
            }
            Some(Err(e)) => {
                let message = format!("the upstream stream broke: {e}");
                self.queue.extend(self.translator.error_frame(&message));
                self.finished = true;
            }
            None => {
                let message = "the upstream stream ended before its last event";
                self.queue.extend(self.translator.error_frame(message));
                self.finished = true;
            }
        }
    }

    /// Everything queued as one chunk: events that arrived together leave together.
    fn flush(&mut self) -> Bytes {
        if self.queue.len() == 1 {
            return self.queue.pop_front().unwrap_or_default();
        }
        let mut out = bytes::BytesMut::with_capacity(self.queue.iter().map(Bytes::len).sum());
        for b in self.queue.drain(..) {
            out.extend_from_slice(&b);
        }
        out.freeze()
    }
}

fn translated_stream(
    body: BoxBody,
    translator: Box<dyn Translate>,
    exchange: Option<Exchange>,
) -> BoxBody {
    use futures_util::FutureExt;
    let events = crate::http::sse::events(BodyDataStream::new(body)).boxed();
    let state = StreamState {
        events,
        translator,
        queue: VecDeque::new(),
        finished: false,
        exchange,
        streamed_text: 0,
    };
    let frames = futures_util::stream::unfold(state, |mut s| async move {
        while s.queue.is_empty() && !s.finished {
            let next = s.events.next().await;
            s.handle(next);
        }
        // Take whatever else is already buffered without waiting for more.
        while !s.finished {
            match s.events.next().now_or_never() {
                Some(next) => s.handle(next),
                None => break,
            }
        }
        if s.queue.is_empty() {
            return None;
        }
        let chunk = s.flush();
        Some((Ok::<_, BoxError>(Frame::data(chunk)), s))
    });
    BoxBody::new(StreamBody::new(frames))
}

/// One LLM exchange, finished with its usage when the response ends (or the client leaves):
/// its token reservation is settled and gen_ai metrics recorded.
#[derive(Clone)]
pub struct Exchange {
    reservation: Arc<Reservation>,
    metrics: Arc<Metrics>,
    /// What is known before the answer; completed with its usage at the end.
    facts: LlmFacts,
    record: Arc<RequestRecord>,
    started: Instant,
    /// The route's labels: its client-chosen models are bounded per route.
    labels: Arc<RequestLabels>,
    /// The prompt's tokens by [`usage::estimate`] of the request body, for cut streams.
    prompt_estimate: u64,
    /// `gen_ai.operation.name`: `chat` or `embeddings`.
    operation: &'static str,
}

impl Exchange {
    /// A complete answer: the upstream's counts are debited.
    pub fn finish(self, usage: &Usage) {
        self.settle(usage.total(), usage);
    }

    /// A stream cut before its last event (client gone, upstream broke): what the upstream
    /// has not counted yet is estimated, the prompt from its size, the output from the text
    /// streamed so far.
    fn finish_cut(self, usage: &Usage, streamed_text: usize) {
        let input = usage.input.unwrap_or(self.prompt_estimate);
        let output = usage
            .output
            .unwrap_or(0)
            .max(usage::estimate(streamed_text));
        self.settle(input.saturating_add(output), usage);
    }

    /// Settles the reservation with `tokens` and records the upstream's usage.
    fn settle(self, tokens: u64, usage: &Usage) {
        self.reservation.settle(tokens);
        let facts = LlmFacts {
            response_model: Some(
                usage
                    .response_model
                    .clone()
                    .unwrap_or_else(|| self.facts.request_model.clone()),
            ),
            input_tokens: usage.input,
            output_tokens: usage.output,
            ..self.facts
        };
        let response_model = facts.response_model.as_deref().unwrap_or_default();
        let models = (
            self.operation,
            facts.provider,
            facts.request_model.as_str(),
            response_model,
        );
        let make = || {
            let (m, route) = (&self.metrics, self.labels.values()[3]);
            let bounded = &m.client_labels;
            let request_model = bounded.admit("request_model", route, &facts.request_model);
            let response_model = bounded.admit("response_model", route, response_model);
            let tokens = |kind| {
                m.gen_ai_token_usage.with_label_values(&[
                    kind,
                    self.operation,
                    facts.provider,
                    request_model,
                    response_model,
                ])
            };
            GenAi {
                input_tokens: tokens("input"),
                output_tokens: tokens("output"),
                duration: m.gen_ai_request_duration.with_label_values(&[
                    self.operation,
                    facts.provider,
                    request_model,
                    response_model,
                ]),
            }
        };
        self.labels.series.gen_ai(models, make, |series| {
            for (histogram, tokens) in [
                (&series.input_tokens, usage.input),
                (&series.output_tokens, usage.output),
            ] {
                if let Some(t) = tokens {
                    histogram.observe(t as f64);
                }
            }
            series
                .duration
                .observe(self.started.elapsed().as_secs_f64());
        });
        let _ = self.record.llm.set(facts);
    }
}

#[cfg(test)]
mod read_all_tests {
    use super::*;

    fn body(frames: Vec<Bytes>) -> BoxBody {
        let frames = frames
            .into_iter()
            .map(|b| Ok::<_, BoxError>(Frame::data(b)));
        BoxBody::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn one_frame_is_passed_on_and_several_are_joined_in_order() {
        let only = Bytes::from_static(b"{\"id\":1}");
        let read = read_all(body(vec![only.clone()]), "p").await.unwrap();
        assert_eq!(read.as_ptr(), only.as_ptr(), "not copied");
        let parts = ["a", "", "bc", "d"].map(Bytes::from).to_vec();
        let read = read_all(body(parts), "p").await.unwrap();
        assert_eq!(read, "abcd");
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_refused() {
        let at_bound = Bytes::from(vec![0u8; MAX_UPSTREAM_BODY]);
        assert_eq!(
            read_all(body(vec![at_bound.clone()]), "p")
                .await
                .unwrap()
                .len(),
            MAX_UPSTREAM_BODY
        );
        let over = body(vec![at_bound, Bytes::from_static(b"x")]);
        let err = read_all(over, "p").await.unwrap_err().to_string();
        assert!(err.contains("length limit exceeded"), "{err}");
    }
}
