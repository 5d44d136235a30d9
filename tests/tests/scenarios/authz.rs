//! Issue 14, `authorization`, `mcpAuthorization` and `backendAuth.passthrough`: CEL rules over
//! the request, its source, the caller's JWT (agentgateway's example tokens) and the LLM
//! model; MCP lists filtered and denied calls kept from the target.

use std::path::PathBuf;

use serde_json::{Value, json};
use tollgate_tests::free_port;
use tollgate_tests::llm::{FakeLlm, Kind};
use tollgate_tests::mcp::McpClient;
use tollgate_tests::proxy::{Proxy, ProxyOptions};
use tollgate_tests::upstream::FakeUpstream;

const FORBIDDEN: &str = "forbidden: the route's authorization policy does not allow this request";

/// agentgateway's `authorization` example: its config, public key and tokens.
fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/agentgateway/authorization")
}

/// `example1.key` (`sub: test-user`, `nested.key: value`) or `example2.key` (`sub` only).
fn example_token(name: &str) -> String {
    let path = example_dir().join("manifests/jwt").join(name);
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// A client whose every request carries `token` as a bearer token (or none).
fn client_as(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    tollgate_tests::http_builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// `jwtAuth` as the example writes it: the key file relative to the proxy's directory.
const EXAMPLE_JWT: &str = "        jwtAuth:\n          issuer: agentgateway.dev\n          audiences: [test.agentgateway.dev]\n          jwks: {file: ./manifests/jwt/pub-key}\n";

#[tokio::test(flavor = "multi_thread")]
async fn rules_read_the_request_and_its_source_and_a_refusal_names_only_the_policy() {
    let upstream = FakeUpstream::start("u").await;
    let port = free_port();
    let route = |name: &str, rules: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      backends: [{{host: \"{}\"}}]\n      policies:\n        authorization:\n          rules:\n{rules}",
            upstream.authority()
        )
    };
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}{}",
        route(
            "team",
            "          - 'request.headers[\"x-team\"] == \"red\"'\n          - deny: 'request.headers[\"x-block\"] == \"yes\"'\n"
        ),
        route(
            "local",
            "          - 'cidr(\"127.0.0.0/8\").containsIP(source.address)'\n"
        ),
        route(
            "remote",
            "          - 'cidr(\"10.0.0.0/8\").containsIP(source.address)'\n"
        ),
        route(
            "require",
            "          - require: 'request.method == \"GET\"'\n          - require: 'source.port > 0'\n"
        ),
    );
    let proxy = Proxy::start(&config).await;
    let send = |path: &str, headers: &[(&str, &str)], method: reqwest::Method| {
        let mut req = tollgate_tests::http().request(method, proxy.url(port, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let get = reqwest::Method::GET;
    let red = [("x-team", "red")];
    let cases = [
        ("/team/a", &red[..], get.clone(), 200),
        ("/team/b", &[("x-team", "blue")], get.clone(), 403),
        ("/team/c", &[], get.clone(), 403),
        (
            "/team/d",
            &[("x-team", "red"), ("x-block", "yes")],
            get.clone(),
            403,
        ),
        ("/local/e", &[], get.clone(), 200),
        ("/remote/f", &[], get.clone(), 403),
        ("/require/g", &[], get.clone(), 200),
        ("/require/h", &[], reqwest::Method::DELETE, 403),
    ];
    for (path, headers, method, want) in cases {
        let (status, body) = send(path, headers, method).await;
        assert_eq!(status, want, "{path}: {body}");
        if want == 403 {
            assert_eq!(
                body, FORBIDDEN,
                "{path}: the body names the policy, not its rules"
            );
        }
    }
    let seen: Vec<String> = upstream.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        seen,
        ["/team/a", "/local/e", "/require/g"],
        "refused requests stay at the gateway"
    );
    let refused = proxy
        .metric("agentgateway_requests_total", &["reason=\"Authorization\""])
        .await;
    assert_eq!(refused, 5.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_allow_list_is_decided_before_any_provider_call() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: o, provider: {{openAI: {{}}}}, hostOverride: \"{}\"}}\n      policies:\n{EXAMPLE_JWT}        authorization:\n          rules:\n          - 'llm.requestModel == \"gpt-4o-mini\"'\n          - 'jwt.sub == \"test-user\" && llm.requestModel.startsWith(\"gpt-4o\")'\n        localRateLimit: [{{maxTokens: 2, tokensPerFill: 1, fillInterval: 1h}}]\n",
        openai.authority()
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        cwd: Some(&example_dir()),
        ..Default::default()
    });
    proxy.wait_ready().await;
    let ask = |model: &str, token: Option<String>| {
        let req = client_as(token.as_deref())
            .post(proxy.url(port, "/v1/chat/completions"))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // Refused callers spend none of the route's two requests.
    for _ in 0..5 {
        let (status, body) = ask("gpt-4o", None).await;
        assert_eq!((status, body.as_str()), (403, FORBIDDEN));
    }
    assert!(
        openai.seen().is_empty(),
        "no provider call for a denied model"
    );
    let (status, body) = ask("gpt-4o-mini", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ask("gpt-4o", Some(example_token("example2.key"))).await;
    assert_eq!(status, 200, "the caller's identity widens the list: {body}");
    let models: Vec<Value> = openai
        .seen()
        .iter()
        .map(|s| s.body["model"].clone())
        .collect();
    assert_eq!(models, ["gpt-4o-mini", "gpt-4o"]);
}

/// The example's `mcpAuthorization` rules, on a fake target whose `pid` stands for its
/// `printEnv` and whose `crash` no rule allows.
fn mcp_config(port: u16) -> String {
    let policies = format!(
        "    - name: mcp\n      policies:\n{EXAMPLE_JWT}        mcpAuthorization:\n          rules:\n          - 'mcp.tool.name == \"echo\"'\n          - 'jwt.sub == \"test-user\" && mcp.tool.name == \"add\"'\n          - 'mcp.tool.name == \"pid\" && jwt.nested.key == \"value\"'\n          - 'mcp.resource.uri == \"memo://one\" && jwt.sub != null'\n"
    );
    tollgate_tests::mcp::config(port, &["one"], "", "").replace("    - name: mcp\n", &policies)
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_lists_and_calls_follow_the_callers_identity() {
    let port = free_port();
    let config = mcp_config(port);
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        cwd: Some(&example_dir()),
        ..Default::default()
    });
    proxy.wait_ready().await;
    let url = proxy.url(port, "/mcp");
    let session = |token: Option<String>| {
        let url = url.clone();
        async move {
            let mut c = McpClient::with_http(&url, client_as(token.as_deref()));
            let answer = c.initialize().await;
            assert!(answer.get("result").is_some(), "{answer}");
            c
        }
    };
    let sorted = |mut names: Vec<String>| {
        names.sort();
        names
    };

    let mut anonymous = session(None).await;
    assert_eq!(anonymous.tool_names().await, ["echo"]);
    assert_eq!(
        anonymous.call_text("echo", json!({"text": "hi"})).await,
        "one: hi"
    );
    let denied = anonymous.call("add", json!({"a": 1, "b": 2})).await;
    assert_eq!(denied["error"]["code"], -32602, "{denied}");
    assert_eq!(denied["error"]["message"], "Unknown tool: add");
    let resources = anonymous.request("resources/list", json!({})).await;
    assert_eq!(resources["result"]["resources"], json!([]), "{resources}");
    let read = anonymous
        .request("resources/read", json!({"uri": "memo://one"}))
        .await;
    assert_eq!(read["error"]["message"], "Unknown resource: memo://one");

    let mut example2 = session(Some(example_token("example2.key"))).await;
    assert_eq!(sorted(example2.tool_names().await), ["add", "echo"]);
    assert_eq!(
        example2.call_text("add", json!({"a": 1, "b": 2})).await,
        "3"
    );
    let denied = example2.call("pid", json!({})).await;
    assert_eq!(denied["error"]["message"], "Unknown tool: pid");
    let resources = example2.request("resources/list", json!({})).await;
    assert_eq!(resources["result"]["resources"][0]["uri"], "memo://one");

    let mut example1 = session(Some(example_token("example1.key"))).await;
    assert_eq!(sorted(example1.tool_names().await), ["add", "echo", "pid"]);
    // A denied call never reaches the target: `crash` would end its process.
    let before = example1.call_text("pid", json!({})).await;
    let denied = example1.call("crash", json!({})).await;
    assert_eq!(denied["error"]["message"], "Unknown tool: crash");
    assert_eq!(example1.call_text("pid", json!({})).await, before);

    // A token whose signature does not verify is refused before any rule.
    let token = example_token("example2.key");
    let forged = format!("{}AAAA", &token[..token.len() - 4]);
    let resp = McpClient::with_http(&url, client_as(Some(&forged)))
        .post(&tollgate_tests::mcp::initialize_request())
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_forwards_the_callers_token_to_hosts_and_providers() {
    let upstream = FakeUpstream::start("u").await;
    let token = example_token("example2.key");
    let openai = FakeLlm::start(Kind::OpenAi, Some(&token)).await;
    let port = free_port();
    let route = |name: &str, backend: String, passthrough: &str| {
        format!(
            "    - name: {name}\n      matches: [{{path: {{pathPrefix: /{name}}}}}]\n      backends: [{backend}]\n      policies:\n{EXAMPLE_JWT}        backendAuth: {{passthrough: {passthrough}}}\n"
        )
    };
    let host = format!("{{host: \"{}\"}}", upstream.authority());
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n{}{}{}",
        route("bearer", host.clone(), "{}"),
        route(
            "query",
            host,
            "{location: {queryParameter: {name: access_token}}}"
        ),
        route(
            "llm",
            format!(
                "{{ai: {{name: o, provider: {{openAI: {{model: gpt-4o}}}}, hostOverride: \"{}\"}}}}",
                openai.authority()
            ),
            "{}"
        ),
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        cwd: Some(&example_dir()),
        ..Default::default()
    });
    proxy.wait_ready().await;
    let caller = client_as(Some(&token));
    for path in ["/bearer/a", "/query/b?x=1"] {
        let resp = caller.get(proxy.url(port, path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let anonymous = tollgate_tests::http().get(proxy.url(port, "/bearer/c"));
    assert_eq!(anonymous.send().await.unwrap().status(), 200);
    let seen = upstream.requests();
    assert_eq!(seen[0].headers["authorization"], format!("Bearer {token}"));
    assert_eq!(seen[1].path, format!("/query/b?x=1&access_token={token}"));
    assert!(seen[1].headers.get("authorization").is_none());
    assert!(
        seen[2].headers.get("authorization").is_none(),
        "no token, none sent"
    );

    // A provider without its own key gets the caller's token (the fake accepts only it).
    let resp = caller
        .post(proxy.url(port, "/llm/v1/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let signature = token.rsplit('.').next().unwrap();
    let logs = format!("{}{}", proxy.access_log(), proxy.log());
    assert!(
        !logs.contains(signature),
        "the passed-through token is never logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_gives_remote_mcp_targets_the_callers_identity() {
    // Gateway A requires a token and applies the example's rules; gateway B reaches it as two
    // remote targets and passes its caller's token through.
    let a_port = free_port();
    let a_config = mcp_config(a_port).replace(
        "          audiences:",
        "          mode: strict\n          audiences:",
    );
    let a = Proxy::spawn(ProxyOptions {
        config: &a_config,
        cwd: Some(&example_dir()),
        ..Default::default()
    });
    let b_port = free_port();
    let b_config = format!(
        "binds:\n- port: {b_port}\n  listeners:\n  - routes:\n    - policies:\n{EXAMPLE_JWT}        backendAuth: {{passthrough: {{}}}}\n      backends:\n      - mcp:\n          targets:\n          - name: streamable\n            mcp: {{host: \"127.0.0.1:{a_port}\"}}\n          - name: legacy\n            sse: {{host: \"http://127.0.0.1:{a_port}/sse\"}}\n"
    );
    let b = Proxy::spawn(ProxyOptions {
        config: &b_config,
        cwd: Some(&example_dir()),
        ..Default::default()
    });
    a.wait_ready().await;
    b.wait_ready().await;
    let url = b.url(b_port, "/mcp");
    let mut c = McpClient::with_http(&url, client_as(Some(&example_token("example1.key"))));
    let answer = c.initialize().await;
    assert!(answer.get("result").is_some(), "{answer}");
    let mut tools = c.tool_names().await;
    tools.sort();
    assert_eq!(
        tools,
        [
            "legacy_add",
            "legacy_echo",
            "legacy_pid",
            "streamable_add",
            "streamable_echo",
            "streamable_pid"
        ],
        "A saw example1's identity on both transports"
    );

    // Without a token B has none to pass: A refuses its targets' connections.
    let answer = McpClient::new(&url).initialize().await;
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("401 Unauthorized"), "{answer}");
}
