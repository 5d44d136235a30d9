//! Cloud providers with cloud credentials: Vertex AI (Gemini models on its OpenAI-compatible
//! endpoint, Anthropic models on `rawPredict`) with Google service-account tokens, and Azure
//! OpenAI with Microsoft Entra tokens; tokens cached, refreshed, and never shown.

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};
use tollgate_tests::cloud::{Client, FakeTokenEndpoint};
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{FakeLlm, Kind, Proxy, eventually, free_port};
use tollgate_tests::{body_text as text, post_json as post};

const CLIENT_EMAIL: &str = "tollgate@acme-ml.iam.gserviceaccount.com";

/// A service account generated now: its credential file's text (`token_uri` to be set) and
/// its public key.
fn service_account() -> (String, DecodingKey) {
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
    let der = key.to_pkcs8_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let signing = EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes());
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::RS256).unwrap();
    let file = json!({
        "type": "service_account",
        "project_id": "acme-ml",
        "private_key_id": "k-1",
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    });
    (file.to_string(), DecodingKey::from_jwk(&jwk).unwrap())
}

/// A Google token endpoint, a Vertex fake accepting its tokens, and a service-account file.
async fn google() -> (FakeTokenEndpoint, FakeLlm, tempfile::TempDir, String) {
    let (file, public_key) = service_account();
    let endpoint = FakeTokenEndpoint::start(Client::Google {
        client_email: CLIENT_EMAIL.into(),
        key: public_key,
    })
    .await;
    let mut file: Value = serde_json::from_str(&file).unwrap();
    file["token_uri"] = json!(endpoint.google_token_uri());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let vertex = FakeLlm::start_with_tokens(Kind::Vertex, endpoint.book()).await;
    (endpoint, vertex, dir, path.display().to_string())
}

/// One Vertex provider (the client's model) on `port` with `policies` (its `backendAuth`),
/// and chat, Messages and token-counting routes.
fn vertex_config(port: u16, vertex: &FakeLlm, policies: &str) -> String {
    format!(
        "binds:
- port: {port}
  listeners:
  - routes:
    - policies:
        ai:
          routes:
            /v1/chat/completions: completions
            /v1/messages/count_tokens: anthropicTokenCount
            /v1/messages: messages
            /v1/embeddings: embeddings
            /v1/responses: responses
      backends:
      - ai:
          groups:
          - providers:
            - name: vertex
              provider: {{vertex: {{projectId: acme-ml, region: us-east5}}}}
              hostOverride: \"{}\"
{policies}",
        vertex.authority()
    )
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello there"}]})
}

#[tokio::test]
async fn vertex_serves_gemini_and_anthropic_models_with_one_cached_google_token() {
    let (endpoint, vertex, _dir, file) = google().await;
    let port = free_port();
    let policies = format!(
        "              policies: {{backendAuth: {{gcp: {{type: accessToken, credential: {{file: \"{file}\"}}}}}}}}\n"
    );
    let proxy = Proxy::start(&vertex_config(port, &vertex, &policies)).await;
    let chat_url = proxy.url(port, "/v1/chat/completions");
    let messages_url = proxy.url(port, "/v1/messages");

    // Many first requests at once share one token fetch.
    let first = futures_util::future::join_all(
        (0..8).map(|_| post(&chat_url, chat("google/gemini-2.5-flash", false))),
    )
    .await;
    assert!(first.iter().all(|r| r.status() == 200));
    assert_eq!(endpoint.requests(), 1, "one fetch for concurrent requests");
    assert_eq!(endpoint.refusals(), Vec::<String>::new());

    // Gemini: the OpenAI-compatible endpoint, the model as the client named it.
    let seen = vertex.seen();
    assert_eq!(
        seen[0].path,
        "/v1/projects/acme-ml/locations/us-east5/endpoints/openapi/chat/completions"
    );
    assert_eq!(seen[0].body["model"], "google/gemini-2.5-flash");
    assert_eq!(seen[0].headers["authorization"], "Bearer ya29.fake-1");
    let streamed = text(post(&chat_url, chat("google/gemini-2.5-flash", true)).await).await;
    assert!(streamed.contains("chat.completion.chunk") && streamed.ends_with("data: [DONE]\n\n"));

    // Anthropic on Vertex: rawPredict, `anthropic_version` in the body and no model there.
    let answer: Value = post(&chat_url, chat("claude-sonnet-4-5-20250929", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["object"], "chat.completion", "{answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "anthropic says: Hello there"
    );
    let raw = vertex.seen().pop().unwrap();
    assert_eq!(
        raw.path,
        "/v1/projects/acme-ml/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    );
    assert_eq!(raw.body["anthropic_version"], "vertex-2023-10-16");
    assert!(raw.body.get("model").is_none());
    let streamed = text(post(&chat_url, chat("claude-sonnet-4-5-20250929", true)).await).await;
    assert!(
        streamed.contains("\"content\":\"anthropic ") && streamed.ends_with("data: [DONE]\n\n"),
        "{streamed}"
    );
    assert!(
        vertex
            .seen()
            .pop()
            .unwrap()
            .path
            .ends_with(":streamRawPredict")
    );

    // Messages clients: Anthropic models as they are, streams too; Gemini translated.
    let message: Value = post(&messages_url, chat("claude-opus-4-6", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(message["type"], "message", "{message}");
    assert_eq!(message["content"][0]["text"], "anthropic says: Hello there");
    let events = text(post(&messages_url, chat("claude-opus-4-6", true)).await).await;
    assert!(
        events.contains("event: message_start") && events.contains("event: message_stop"),
        "{events}"
    );
    let translated: Value = post(&messages_url, chat("google/gemini-2.5-flash", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(translated["type"], "message", "{translated}");
    assert_eq!(translated["content"][0]["text"], "openai says: Hello there");

    // Token counting: count-tokens:rawPredict, the model kept in the body.
    let counted: Value = post(
        &proxy.url(port, "/v1/messages/count_tokens"),
        json!({"model": "claude-opus-4-6", "messages": [{"role": "user", "content": "one two three"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(counted["input_tokens"], 3);
    let count = vertex.seen().pop().unwrap();
    assert!(
        count
            .path
            .ends_with("/publishers/anthropic/models/count-tokens:rawPredict")
    );
    assert_eq!(count.body["model"], "claude-opus-4-6");

    // What Vertex cannot serve here is refused before it is called.
    let calls = vertex.seen().len();
    let embeddings = post(
        &proxy.url(port, "/v1/embeddings"),
        json!({"model": "text-embedding-005", "input": "hi"}),
    )
    .await;
    assert_eq!(embeddings.status(), 400);
    assert!(
        embeddings
            .text()
            .await
            .unwrap()
            .contains("embeddings on Vertex")
    );
    assert_eq!(vertex.seen().len(), calls);
    // The Responses API, translated: through Messages to a Gemini model's chat API, to an
    // Anthropic model's rawPredict.
    for (model, path) in [
        (
            "google/gemini-2.5-flash",
            "/endpoints/openapi/chat/completions",
        ),
        ("claude-sonnet-4-5", ":rawPredict"),
    ] {
        let responses = post(
            &proxy.url(port, "/v1/responses"),
            json!({"model": model, "input": "hi"}),
        )
        .await;
        assert_eq!(responses.status(), 200, "{model}");
        let answer: Value = responses.json().await.unwrap();
        assert_eq!(answer["object"], "response", "{answer}");
        assert!(
            vertex.seen().last().unwrap().path.ends_with(path),
            "{model}"
        );
    }

    // Still the first token, fetched once; telemetry names Vertex as agentgateway does.
    assert_eq!(endpoint.requests(), 1);
    assert!(
        vertex
            .seen()
            .iter()
            .all(|s| s.headers["authorization"] == "Bearer ya29.fake-1")
    );
    let labels = ["gen_ai_system=\"gcp.vertex_ai\""];
    let tokens = proxy
        .metric("agentgateway_gen_ai_client_token_usage_count", &labels)
        .await;
    assert!(
        tokens >= 8.0,
        "token usage counted under gcp.vertex_ai: {tokens}"
    );

    // Neither the private key nor a token is shown or logged.
    let shown = proxy.admin_json("/api/config").await.to_string();
    assert!(shown.contains("sa.json"), "the file is shown by its path");
    for secret in ["PRIVATE KEY", "ya29."] {
        assert!(!shown.contains(secret), "{secret} in /api/config");
        assert!(!proxy.log().contains(secret), "{secret} in the log");
        assert!(
            !proxy.access_log().contains(secret),
            "{secret} in the access log"
        );
    }
}

#[tokio::test]
async fn google_tokens_are_refreshed_before_expiry_and_a_failed_fetch_is_a_clear_503_once_expired()
{
    let (endpoint, vertex, _dir, file) = google().await;
    endpoint.knobs().expires_in.store(3, Ordering::SeqCst);
    let port = free_port();
    // No backendAuth: Vertex uses Google's default credentials (GOOGLE_APPLICATION_CREDENTIALS).
    let config = vertex_config(port, &vertex, "");
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        env: vec![("GOOGLE_APPLICATION_CREDENTIALS", &file)],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let url = proxy.url(port, "/v1/chat/completions");
    assert_eq!(
        post(&url, chat("google/gemini-2.5-flash", false))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&url, chat("google/gemini-2.5-flash", false))
            .await
            .status(),
        200
    );
    assert_eq!(endpoint.requests(), 1);
    // A 3 s token is refreshed after 1.5 s, before the upstream would refuse it.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        post(&url, chat("google/gemini-2.5-flash", false))
            .await
            .status(),
        200
    );
    assert_eq!(endpoint.requests(), 2);
    assert_eq!(
        vertex.seen().last().unwrap().headers["authorization"],
        "Bearer ya29.fake-2"
    );

    // A refresh that fails keeps the current token while it lives.
    endpoint.knobs().fail_status.store(503, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        post(&url, chat("google/gemini-2.5-flash", false))
            .await
            .status(),
        200
    );
    assert_eq!(endpoint.requests(), 3);
    assert_eq!(
        vertex.seen().last().unwrap().headers["authorization"],
        "Bearer ya29.fake-2"
    );
    // Once it has expired, requests fail with why, and Vertex is not called.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = vertex.seen().len();
    let failed = post(&url, chat("google/gemini-2.5-flash", false)).await;
    assert_eq!(failed.status(), 503);
    let body = failed.text().await.unwrap();
    assert_eq!(
        body,
        "provider vertex has no access token: the token endpoint answered 503 Service Unavailable: temporarily_unavailable: the fake was told to fail"
    );
    let fetches = endpoint.requests();
    assert_eq!(
        post(&url, chat("google/gemini-2.5-flash", false))
            .await
            .status(),
        503
    );
    assert_eq!(
        endpoint.requests(),
        fetches,
        "a failure is held briefly, not refetched per request"
    );
    assert_eq!(
        vertex.seen().len(),
        calls,
        "Vertex is not called without a token"
    );
    // The endpoint recovers: so does the provider (its ejection lasts 10 s, but it is the only one).
    endpoint.knobs().fail_status.store(0, Ordering::SeqCst);
    eventually(Duration::from_secs(10), || async {
        match post(&url, chat("google/gemini-2.5-flash", false))
            .await
            .status()
            .as_u16()
        {
            200 => Ok(()),
            s => Err(format!("status {s}")),
        }
    })
    .await;
}

#[tokio::test]
async fn gcloud_user_credentials_use_the_refresh_token_grant() {
    const CLIENT_ID: &str = "764086051850-fake.apps.googleusercontent.com";
    const CLIENT_SECRET: &str = "d-FL95Q19q7MQmFpd7hHD0Ty";
    const REFRESH_TOKEN: &str = "1//0user-refresh-token";
    let endpoint = FakeTokenEndpoint::start(Client::GoogleUser {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        refresh_token: REFRESH_TOKEN.into(),
    })
    .await;
    let vertex = FakeLlm::start_with_tokens(Kind::Vertex, endpoint.book()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("application_default_credentials.json");
    let credentials = json!({
        "type": "authorized_user",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        "token_uri": endpoint.google_token_uri(),
    });
    std::fs::write(&file, credentials.to_string()).unwrap();
    let port = free_port();
    let policies = format!(
        "              policies: {{backendAuth: {{gcp: {{credential: {{file: \"{}\"}}}}}}}}\n",
        file.display()
    );
    let proxy = Proxy::start(&vertex_config(port, &vertex, &policies)).await;
    let url = proxy.url(port, "/v1/chat/completions");
    for _ in 0..2 {
        assert_eq!(
            post(&url, chat("claude-opus-4-6", false)).await.status(),
            200
        );
    }
    assert_eq!(endpoint.requests(), 1);
    assert_eq!(endpoint.refusals(), Vec::<String>::new());
    assert_eq!(
        vertex.seen()[0].headers["authorization"],
        "Bearer ya29.fake-1"
    );
    let shown = proxy.admin_json("/api/config").await.to_string();
    for secret in [CLIENT_SECRET, REFRESH_TOKEN, "ya29."] {
        assert!(!shown.contains(secret), "{secret} in /api/config");
        assert!(!proxy.log().contains(secret), "{secret} in the log");
    }
}

#[tokio::test]
async fn vertex_rate_limits_fail_over_and_missing_credentials_are_named() {
    let (_endpoint, vertex, _dir, file) = google().await;
    let openai = FakeLlm::start(Kind::OpenAi, Some("sk-openai")).await;
    let port = free_port();
    let config = format!(
        "binds:
- port: {port}
  listeners:
  - routes:
    - name: failover
      matches: [{{path: {{pathPrefix: /v1}}}}]
      policies:
        retry: {{attempts: 2, codes: [429, 503]}}
      backends:
      - ai:
          groups:
          - providers:
            - name: vertex
              provider: {{vertex: {{projectId: acme-ml, region: us-east5}}}}
              hostOverride: \"{}\"
              policies: {{backendAuth: {{gcp: {{credential: {{file: \"{file}\"}}}}}}}}
          - providers:
            - name: openai
              provider: {{openAI: {{model: gpt-4o}}}}
              hostOverride: \"{}\"
              backendAuth: {{key: sk-openai}}
    - name: default-credentials
      matches: [{{path: {{pathPrefix: /adc}}}}]
      backends:
      - ai:
          name: vertex-adc
          provider: {{vertex: {{projectId: acme-ml}}}}
          hostOverride: \"{}\"
",
        vertex.authority(),
        openai.authority(),
        vertex.authority(),
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        env: vec![("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")],
        ..Default::default()
    });
    proxy.wait_ready().await;
    vertex.knobs().fail_status.store(429, Ordering::SeqCst);
    let answer: Value = post(
        &proxy.url(port, "/v1/chat/completions"),
        chat("google/gemini-2.5-flash", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        answer["model"], "gpt-4o-2025-08-07",
        "failed over: {answer}"
    );
    assert_eq!(vertex.seen().len(), 1);

    // Credentials from the environment are found (or not) when a request needs them.
    let failed = post(
        &proxy.url(port, "/adc/v1/chat/completions"),
        chat("google/gemini-2.5-flash", false),
    )
    .await;
    assert_eq!(failed.status(), 503);
    assert_eq!(
        failed.text().await.unwrap(),
        "provider vertex-adc has no access token: cannot read the Google credential file /nonexistent/adc.json: No such file or directory (os error 2)"
    );
    assert!(proxy.log().contains("provider credentials unusable"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_credential_file_rejects_the_config_with_its_line_and_column() {
    let vertex = FakeLlm::start(Kind::Vertex, None).await;
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\n  \"type\": \"service_account\",\n  \"client_email\": ",
    )
    .unwrap();
    let policies = format!(
        "              policies: {{backendAuth: {{gcp: {{credential: {{file: \"{}\"}}}}}}}}\n",
        broken.display()
    );
    let mut proxy = Proxy::spawn(ProxyOptions {
        config: &vertex_config(free_port(), &vertex, &policies),
        ..Default::default()
    });
    let status = proxy.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    let log = proxy.log();
    let expected = format!(
        "binds[0].listeners[0].routes[0].backends[0].ai.groups[0].providers[0].policies.backendAuth.gcp.credential.file: the Google credential file {}: not a credential file (EOF while parsing a value at line 3 column 18)",
        broken.display()
    );
    assert!(log.contains(&expected), "{log}");
}

#[tokio::test]
async fn azure_entra_tokens_replace_the_api_key_and_the_secret_stays_hidden() {
    const SECRET: &str = "entra-client-secret-value";
    let endpoint = FakeTokenEndpoint::start(Client::Entra {
        tenant: "acme-tenant".into(),
        client_id: "app-1".into(),
        secret: Some(SECRET.into()),
        federated_token: Some("federated-k8s-token".into()),
    })
    .await;
    let azure = FakeLlm::start_with_tokens(Kind::Azure, endpoint.book()).await;
    let federated = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(federated.path(), "federated-k8s-token\n").unwrap();
    let port = free_port();
    let provider = |name: &str, auth: &str| {
        format!(
            "      - ai:\n          name: {name}\n          provider: {{azure: {{resourceName: acme, resourceType: openAI}}}}\n          hostOverride: \"{}\"\n          policies: {{backendAuth: {{azure: {{explicitConfig: {auth}}}}}}}\n",
            azure.authority()
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - matches: [{{path: {{pathPrefix: /v1}}}}]\n      backends:\n{}    - matches: [{{path: {{pathPrefix: /wrong}}}}]\n      backends:\n{}    - matches: [{{path: {{pathPrefix: /workload}}}}]\n      backends:\n{}",
        provider(
            "entra",
            "{clientSecret: {tenant_id: acme-tenant, client_id: app-1, client_secret: $TEST_AZURE_SECRET}}"
        ),
        provider(
            "entra-wrong",
            "{clientSecret: {tenant_id: acme-tenant, client_id: app-1, client_secret: not-the-secret}}"
        ),
        provider("workload", "{workloadIdentity: {}}"),
    );
    let authority = endpoint.authority();
    let token_file = federated.path().display().to_string();
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        env: vec![
            ("TEST_AZURE_SECRET", SECRET),
            ("AZURE_AUTHORITY_HOST", &authority),
            ("AZURE_TENANT_ID", "acme-tenant"),
            ("AZURE_CLIENT_ID", "app-1"),
            ("AZURE_FEDERATED_TOKEN_FILE", &token_file),
        ],
        ..Default::default()
    });
    proxy.wait_ready().await;
    for _ in 0..3 {
        let ok = post(
            &proxy.url(port, "/v1/chat/completions"),
            chat("gpt-4o", false),
        )
        .await;
        assert_eq!(ok.status(), 200);
    }
    assert_eq!(endpoint.requests(), 1);
    let seen = azure.seen();
    assert_eq!(seen[0].headers["authorization"], "Bearer ya29.fake-1");
    assert!(seen[0].headers.get("api-key").is_none());

    let wrong = post(
        &proxy.url(port, "/wrong/v1/chat/completions"),
        chat("gpt-4o", false),
    )
    .await;
    assert_eq!(wrong.status(), 503);
    assert_eq!(
        wrong.text().await.unwrap(),
        "provider entra-wrong has no access token: the token endpoint answered 401 Unauthorized: invalid_client: AADSTS7000215: Invalid client secret provided."
    );

    let workload = post(
        &proxy.url(port, "/workload/v1/chat/completions"),
        chat("gpt-4o", false),
    )
    .await;
    assert_eq!(workload.status(), 200);
    assert_eq!(
        azure.seen().last().unwrap().headers["authorization"],
        "Bearer ya29.fake-2"
    );

    let shown = proxy.admin_json("/api/config").await.to_string();
    assert!(shown.contains("$TEST_AZURE_SECRET"));
    for secret in [SECRET, "not-the-secret", "federated-k8s-token", "ya29."] {
        assert!(!shown.contains(secret), "{secret} in /api/config");
        assert!(!proxy.log().contains(secret), "{secret} in the log");
    }
}
