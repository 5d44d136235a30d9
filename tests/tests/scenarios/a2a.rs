//! `a2a` routes: the agent card's `url` points back at the gateway (under the path the client
//! used), calls are logged and counted as A2A with their JSON-RPC method.

use std::time::Duration;

use axum::Json;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tollgate_tests::{Proxy, eventually, free_port};

/// An A2A agent: its card (naming its own, private address) and a JSON-RPC endpoint.
async fn agent() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let card = json!({"name": "hello", "url": format!("http://{addr}/"), "version": "1"});
    let app = axum::Router::new()
        .route(
            "/.well-known/agent-card.json",
            get(move || {
                let card = card.clone();
                async move { Json(card) }
            }),
        )
        .route(
            "/",
            post(|Json(call): Json<Value>| async move {
                Json(json!({"jsonrpc": "2.0", "id": call["id"], "result": {"kind": "message"}}))
            }),
        );
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), task)
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_cards_point_at_the_gateway_and_calls_are_a2a() {
    let (agent, _task) = agent().await;
    let port = free_port();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: agent\n      matches: [{{path: {{pathPrefix: /hello}}}}]\n      policies:\n        urlRewrite: {{path: {{prefix: /}}}}\n        a2a: {{}}\n      backends: [{{host: \"{agent}\"}}]\n"
    );
    let proxy = Proxy::start(&config).await;
    let http = tollgate_tests::http();

    let card: Value = http
        .get(proxy.url(port, "/hello/.well-known/agent-card.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["url"], format!("http://127.0.0.1:{port}/hello"));
    assert_eq!(card["name"], "hello");

    let answer: Value = http
        .post(proxy.url(port, "/hello/"))
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["id"], 7, "the body reached the agent: {answer}");

    let line = eventually(Duration::from_secs(5), || async {
        proxy
            .access_log()
            .lines()
            .find(|l| l.contains("a2a.method="))
            .map(str::to_string)
            .ok_or_else(|| format!("no a2a line: {}", proxy.access_log()))
    })
    .await;
    assert!(line.contains("a2a.method=message/send"), "{line}");
    assert!(line.contains("protocol=a2a"), "{line}");
    let labels = |method| ["route=\"agent\"", method];
    assert_eq!(
        proxy
            .metric(
                "tollgate_a2a_requests_total",
                &labels("method=\"message/send\"")
            )
            .await,
        1.0
    );
    assert_eq!(
        proxy
            .metric(
                "tollgate_a2a_requests_total",
                &labels("method=\"agent-card\"")
            )
            .await,
        1.0
    );
}
