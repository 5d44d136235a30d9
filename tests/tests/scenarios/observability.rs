//! Observability: OTLP spans (server and client, W3C trace context, gen_ai and mcp attributes,
//! CEL fields), access logs (text and JSON, fields, filter, level), CEL metric labels and the
//! gateway-overhead histogram.

use std::net::{IpAddr, Ipv4Addr};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{Value, json};
use tollgate_tests::otlp::{OtlpSink, attr};
use tollgate_tests::proxy::ProxyOptions;
use tollgate_tests::{
    FakeLlm, FakeUpstream, Kind, Proxy, eventually, free_port, seed_with_overrides,
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_walkthrough_observability_config_traces_logs_and_labels() {
    // The seed exports to 127.0.0.1:4317; this test is the one that listens there.
    let sink = OtlpSink::start("127.0.0.1:4317").await;
    let anthropic = FakeLlm::start(Kind::Anthropic, Some("sk-ant-obs")).await;
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let config = seed_with_overrides(
        "metrics-testing.yaml",
        &openai.authority(),
        &anthropic.authority(),
    );
    let proxy = Proxy::spawn(ProxyOptions {
        config: &config,
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 30)),
        env: vec![("ANTHROPIC_API_KEY", "sk-ant-obs")],
        ..Default::default()
    });
    proxy.wait_ready().await;
    let resp = tollgate_tests::http()
        .post(proxy.url(3000, "/v1/chat/completions"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&json!({"model": "claude-sonnet-4-5", "messages": [
            {"role": "user", "content": "Write me a paragraph about Istio Ambient Mesh"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let input = body["usage"]["prompt_tokens"].as_u64().unwrap().to_string();
    let output = body["usage"]["completion_tokens"]
        .as_u64()
        .unwrap()
        .to_string();

    // The server span continues the client's trace and carries the seed's fields.
    let server = sink
        .wait_for("server span of the request", |s| {
            hex(&s.trace_id) == TRACE_ID && s.kind == SpanKind::Server as i32
        })
        .await;
    assert_eq!(hex(&server.parent_span_id), PARENT_ID);
    assert_eq!(attr(&server, "gen_ai.system").as_deref(), Some("anthropic"));
    assert_eq!(
        attr(&server, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        attr(&server, "gen_ai.request.model").as_deref(),
        Some("claude-3-5-haiku-latest")
    );
    assert_eq!(
        attr(&server, "gen_ai.response.model").as_deref(),
        Some("claude-3-5-haiku-latest-20241022")
    );
    assert_eq!(
        attr(&server, "gen_ai.usage.input_tokens"),
        Some(input.clone())
    );
    assert_eq!(attr(&server, "gen_ai.usage.output_tokens"), Some(output));
    assert_eq!(
        attr(&server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&server, "authenticated").as_deref(),
        Some("false"),
        "without a JWT, jwt.sub is null (DESIGN §10)"
    );

    // One client span for the provider call, child of the server span, propagated upstream.
    let client = sink
        .wait_for("client span of the provider call", |s| {
            hex(&s.trace_id) == TRACE_ID && s.kind == SpanKind::Client as i32
        })
        .await;
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.name, "POST anthropic");
    let traceparent = anthropic.seen()[0].headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        traceparent,
        format!("00-{TRACE_ID}-{}-01", hex(&client.span_id))
    );

    // The access log line has the standard and the seed's fields; the user_id label is empty.
    let line = eventually(std::time::Duration::from_secs(5), || async {
        proxy
            .access_log()
            .lines()
            .find(|l| l.contains("http.path=/v1/chat/completions"))
            .map(str::to_string)
            .ok_or_else(|| format!("no access log line; stdout: {}", proxy.access_log()))
    })
    .await;
    for want in [
        "\tinfo\trequest ",
        "http.status=200",
        "gen_ai.provider.name=anthropic",
        "model=claude-3-5-haiku-latest",
        "provider=anthropic",
        &format!("gen_ai.usage.input_tokens={input}"),
        &format!("trace.id={TRACE_ID}"),
        "prompt=",
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
    assert!(!line.contains("user_id="), "{line}");
    assert_eq!(
        proxy
            .metric(
                "agentgateway_requests_total",
                &[r#"status="200""#, r#"user_id="""#, r#"user_name="""#]
            )
            .await,
        1.0
    );
    assert!(!proxy.access_log().contains("sk-ant-obs") && !proxy.log().contains("sk-ant-obs"));
}

/// A host route with retries, tracing at `sampling`, and `extra` config settings.
fn host_config(port: u16, upstream: &str, settings: &str) -> String {
    format!(
        "config:\n{settings}binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: api\n      policies:\n        retry: {{attempts: 2, codes: [503]}}\n      backends: [{{host: \"{upstream}\"}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_are_client_spans_and_sampling_follows_the_config() {
    let sink = OtlpSink::start("127.0.0.1:0").await;
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let tracing = format!(
        "  tracing:\n    otlpEndpoint: http://{}\n    randomSampling: 1.0\n    fields:\n      add: {{route.path: request.path, code: response.code}}\n",
        sink.addr
    );
    let proxy = Proxy::start(&host_config(port, &up.authority(), &tracing)).await;
    let resp = tollgate_tests::http()
        .get(proxy.url(port, "/retry-me"))
        .header("x-fake-status", "503")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let server = sink
        .wait_for("server span", |s| s.kind == SpanKind::Server as i32)
        .await;
    assert_eq!(server.name, "GET api");
    assert_eq!(attr(&server, "route.path").as_deref(), Some("/retry-me"));
    assert_eq!(attr(&server, "code").as_deref(), Some("503"));
    let trace = server.trace_id.clone();
    let attempts = eventually(std::time::Duration::from_secs(10), || async {
        let clients: Vec<_> = sink
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace && s.kind == SpanKind::Client as i32)
            .collect();
        if clients.len() == 2 {
            Ok(clients)
        } else {
            Err(format!("{} client spans", clients.len()))
        }
    })
    .await;
    for a in &attempts {
        assert_eq!(a.parent_span_id, server.span_id);
        assert_eq!(attr(a, "http.response.status_code").as_deref(), Some("503"));
    }

    // randomSampling false: no new traces; a client's sampled traceparent is still honoured,
    // unless clientSampling is false.
    let port = free_port();
    let tracing = format!(
        "  tracing:\n    otlpEndpoint: http://{}\n    randomSampling: false\n",
        sink.addr
    );
    let proxy = Proxy::start(&host_config(port, &up.authority(), &tracing)).await;
    let get = |path: &'static str, traceparent: Option<String>| {
        let url = proxy.url(port, path);
        async move {
            let mut req = tollgate_tests::http().get(url);
            if let Some(tp) = traceparent {
                req = req.header("traceparent", tp);
            }
            assert_eq!(req.send().await.unwrap().status(), 200);
        }
    };
    get("/unsampled", None).await;
    let sampled_trace = "0af7651916cd43dd8448eb211c80319c";
    get(
        "/client-sampled",
        Some(format!("00-{sampled_trace}-b7ad6b7169203331-01")),
    )
    .await;
    let honoured = sink
        .wait_for("the client-sampled request", |s| {
            hex(&s.trace_id) == sampled_trace && s.kind == SpanKind::Server as i32
        })
        .await;
    assert_eq!(
        attr(&honoured, "url.path").as_deref(),
        Some("/client-sampled")
    );
    assert!(
        !sink
            .spans()
            .iter()
            .any(|s| attr(s, "url.path").as_deref() == Some("/unsampled")),
        "randomSampling false traces nothing by itself"
    );
}

/// The proxy's first access-log line (JSON), once it is written.
async fn first_access_log_line(proxy: &Proxy) -> Value {
    eventually(std::time::Duration::from_secs(5), || async {
        let log = proxy.access_log();
        log.lines()
            .next()
            .map(|l| serde_json::from_str(l).unwrap())
            .ok_or_else(|| "no access log line".to_string())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn access_logs_in_json_with_fields_filter_and_level() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let logging = "  logging:\n    format: json\n    filter: 'response.code >= 400'\n    fields:\n      add: {agent: 'request.headers[\"user-agent\"]', path: request.path, key: 'request.headers[\"x-api-key\"]'}\n      remove: [src.addr]\n";
    let proxy = Proxy::start(&host_config(port, &up.authority(), logging)).await;
    let http = tollgate_tests::http();
    for (path, status) in [("/ok", "200"), ("/missing", "404")] {
        let resp = http
            .get(proxy.url(port, path))
            .header("user-agent", "obs-test/1")
            .header("x-api-key", "sk-client-secret")
            .header("x-fake-status", status)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_str(), status);
    }
    let line = first_access_log_line(&proxy).await;
    assert_eq!(line["scope"], "request");
    assert_eq!(line["level"], "info");
    assert_eq!(line["http.status"], 404);
    assert_eq!(line["path"], "/missing");
    assert_eq!(line["agent"], "obs-test/1");
    assert_eq!(line["key"], "<redacted>");
    assert!(!proxy.access_log().contains("sk-client-secret"));
    assert_eq!(line["route"], "api");
    assert!(line.get("src.addr").is_none(), "removed by fields.remove");
    tollgate_tests::settle(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        proxy.access_log().lines().count(),
        1,
        "the 200 was filtered out"
    );

    // level: warn turns access logs off.
    let port = free_port();
    let proxy = Proxy::start(&host_config(
        port,
        &up.authority(),
        "  logging: {level: warn}\n",
    ))
    .await;
    assert_eq!(
        http.get(proxy.url(port, "/quiet"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tollgate_tests::settle(std::time::Duration::from_millis(300)).await;
    assert_eq!(proxy.access_log(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn metric_labels_from_cel_and_the_overhead_histogram() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let metrics = "  metrics:\n    fields:\n      add: {client: 'request.headers[\"x-client\"]', user_id: jwt.sub}\n    remove: [agentgateway_retries_total]\n";
    let proxy = Proxy::start(&host_config(port, &up.authority(), metrics)).await;
    let resp = tollgate_tests::http()
        .get(proxy.url(port, "/labelled"))
        .header("x-client", "team-a")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let count = proxy
        .metric(
            "agentgateway_requests_total",
            &[r#"client="team-a""#, r#"user_id="""#, r#"route="api""#],
        )
        .await;
    assert_eq!(count, 1.0);
    let overhead = proxy
        .metric(
            "tollgate_gateway_overhead_seconds_count",
            &[r#"route="api""#],
        )
        .await;
    assert_eq!(overhead, 1.0);
    assert!(!proxy.metrics().await.contains("agentgateway_retries_total"));
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_calls_are_traced_with_mcp_attributes() {
    let sink = OtlpSink::start("127.0.0.1:0").await;
    let port = free_port();
    let settings = format!(
        "config:\n  tracing:\n    otlpEndpoint: http://{}\n    randomSampling: true\n",
        sink.addr
    );
    let proxy = Proxy::start(&tollgate_tests::mcp::config(
        port,
        &["one", "two"],
        "",
        &settings,
    ))
    .await;
    let mut c = tollgate_tests::mcp::McpClient::connect(&proxy.url(port, "/mcp")).await;
    assert_eq!(
        c.call_text("two_echo", json!({"text": "traced"})).await,
        "two: traced"
    );
    let server = sink
        .wait_for("the tools/call server span", |s| {
            s.name == "tools/call" && s.kind == SpanKind::Server as i32
        })
        .await;
    assert_eq!(
        attr(&server, "mcp.method.name").as_deref(),
        Some("tools/call")
    );
    assert_eq!(attr(&server, "mcp.target").as_deref(), Some("two"));
    assert_eq!(attr(&server, "gen_ai.tool.name").as_deref(), Some("echo"));
    // A session id grants access: spans carry a short hash of it.
    let hash = c
        .session
        .as_deref()
        .map(tollgate_tests::mcp::session_log_id);
    assert_eq!(attr(&server, "mcp.session.id"), hash);
    let call = sink
        .wait_for("the target call", |s| s.name == "tools/call two")
        .await;
    assert_eq!(call.parent_span_id, server.span_id);
    assert_eq!(call.kind, SpanKind::Client as i32);
    let line = eventually(std::time::Duration::from_secs(5), || async {
        proxy
            .access_log()
            .lines()
            .find(|l| l.contains("mcp.method.name=tools/call"))
            .map(str::to_string)
            .ok_or_else(|| "no tools/call log line".to_string())
    })
    .await;
    assert!(
        line.contains("protocol=mcp") && line.contains("mcp.target=two"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_early_is_logged_and_counted_as_499() {
    let up = FakeUpstream::start("u").await;
    let port = free_port();
    let proxy = Proxy::start(&host_config(port, &up.authority(), "")).await;
    let gave_up = tollgate_tests::http()
        .get(proxy.url(port, "/slow"))
        .header("x-fake-delay-ms", "3000")
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client timed out");
    let line = eventually(std::time::Duration::from_secs(5), || async {
        proxy
            .access_log()
            .lines()
            .find(|l| l.contains("http.path=/slow"))
            .map(str::to_string)
            .ok_or_else(|| "no line for the abandoned request".to_string())
    })
    .await;
    assert!(
        line.contains("http.status=499")
            && line.contains("reason=ClientClosed")
            && line.contains("route=api"),
        "{line}"
    );
    let counted = proxy
        .metric(
            "agentgateway_requests_total",
            &[
                r#"status="499""#,
                r#"reason="ClientClosed""#,
                r#"route="api""#,
            ],
        )
        .await;
    assert_eq!(counted, 1.0);
}

/// `llm.prompt` is the request's messages (kept raw, parsed only when a CEL field reads them).
#[tokio::test(flavor = "multi_thread")]
async fn access_log_fields_read_the_llm_prompt() {
    let openai = FakeLlm::start(Kind::OpenAi, None).await;
    let port = free_port();
    let config = format!(
        "config:\n  logging:\n    format: json\n    fields:\n      add: {{first: 'llm.prompt[0].content', turns: 'size(llm.prompt)'}}\nbinds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: llm\n      backends:\n      - ai:\n          name: openai\n          provider: {{openAI: {{model: gpt-4o}}}}\n          hostOverride: \"{}\"\n",
        openai.authority()
    );
    let proxy = Proxy::start(&config).await;
    let resp = tollgate_tests::http()
        .post(proxy.url(port, "/v1/chat/completions"))
        .json(&json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let line = first_access_log_line(&proxy).await;
    assert_eq!(line["first"], "be brief", "{line}");
    assert_eq!(line["turns"], 2, "{line}");
}
