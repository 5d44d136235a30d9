//! `openapi` MCP targets: a REST API's operations served as tools next to another target, each
//! call made as the HTTP request its spec describes; a broken spec is refused at apply.

use serde_json::{Value, json};
use tollgate_tests::mcp::McpClient;
use tollgate_tests::{FakeUpstream, Proxy, free_port};

/// The trimmed Petstore spec (agentgateway's `openapi` example).
fn petstore() -> String {
    format!(
        "{}/fixtures/openapi/petstore.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// One operation whose `x-fake-status` header parameter makes the fake upstream fail.
const STATUS_SPEC: &str = r#"{"openapi": "3.0.3", "info": {"title": "status", "version": "1"},
  "paths": {"/fail": {"get": {"operationId": "fail", "responses": {},
    "parameters": [{"name": "x-fake-status", "in": "header", "required": true,
      "schema": {"type": "string"}}]}}}}"#;

fn config(port: u16, api: &str, spec_file: &str) -> String {
    format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - name: rest\n      backends:\n      - mcp:\n          targets:\n          - name: pets\n            openapi:\n              schema: {{file: '{spec_file}'}}\n              host: {api}\n          - name: status\n            openapi:\n              schema: '{}'\n              host: http://{api}/base\n",
        STATUS_SPEC.replace('\n', " ")
    )
}

fn upstream_body(api: &FakeUpstream, path: &str) -> Value {
    let seen = api.requests();
    let request = seen.iter().find(|r| r.path == path).expect("the request");
    serde_json::from_slice(&request.body).expect("a JSON body")
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_are_tools_and_calls_are_their_requests() {
    let api = FakeUpstream::start("petstore").await;
    let port = free_port();
    let proxy = Proxy::start(&config(port, &api.authority(), &petstore())).await;
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;

    let listed = c.request("tools/list", json!({})).await;
    let tools = listed["result"]["tools"].as_array().unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "pets_addPet",
            "pets_deletePet",
            "pets_findPetsByStatus",
            "pets_getPetById",
            "pets_placeOrder",
            "pets_updatePet",
            "status_fail"
        ]
    );
    let get = tools
        .iter()
        .find(|t| t["name"] == "pets_getPetById")
        .unwrap();
    assert_eq!(get["inputSchema"]["required"], json!(["path"]));

    // A path parameter, escaped, under the spec's server path.
    let answer = c
        .call("pets_getPetById", json!({"path": {"petId": 42}}))
        .await;
    let result = &answer["result"];
    assert_eq!(result["isError"], false, "{answer}");
    assert_eq!(result["structuredContent"]["path"], "/api/v3/pet/42");
    let echoed: Value =
        serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "GET");
    c.call("pets_getPetById", json!({"path": {"petId": "a/../b"}}))
        .await;
    assert!(
        api.requests()
            .iter()
            .any(|r| r.path == "/api/v3/pet/a%2F..%2Fb")
    );

    // Query parameters, a list repeating its key.
    let answer = c
        .call(
            "pets_findPetsByStatus",
            json!({"query": {"status": ["sold", "on hold"]}}),
        )
        .await;
    assert_eq!(
        answer["result"]["structuredContent"]["path"],
        "/api/v3/pet/findByStatus?status=sold&status=on%20hold"
    );

    // A JSON body, and a declared header; an undeclared one is not sent.
    let pet = json!({"name": "doggie", "photoUrls": [], "category": {"id": 1, "name": "dogs"}});
    let answer = c
        .call(
            "pets_addPet",
            json!({"body": pet, "header": {"x-undeclared": "no"}}),
        )
        .await;
    let echoed = &answer["result"]["structuredContent"];
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["headers"]["content-type"], "application/json");
    assert!(echoed["headers"].get("x-undeclared").is_none(), "{echoed}");
    assert_eq!(upstream_body(&api, "/api/v3/pet"), pet);
    let answer = c
        .call(
            "pets_deletePet",
            json!({"path": {"petId": 7}, "header": {"api_key": "k-1"}}),
        )
        .await;
    let echoed = &answer["result"]["structuredContent"];
    assert_eq!(echoed["method"], "DELETE");
    assert_eq!(echoed["headers"]["api_key"], "k-1");

    // An error status is an error result with the API's answer; the host's path leads.
    let answer = c
        .call("status_fail", json!({"header": {"x-fake-status": "404"}}))
        .await;
    let result = &answer["result"];
    assert_eq!(result["isError"], true, "{answer}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("HTTP 404"), "{text}");
    assert!(text.contains("\"path\":\"/base/fail\""), "{text}");

    // A missing path parameter is the caller's error, not a request.
    let before = api.requests().len();
    let answer = c.call("pets_getPetById", json!({})).await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("petId"),
        "{answer}"
    );
    assert_eq!(api.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_spec_keeps_the_last_good_config() {
    let api = FakeUpstream::start("petstore").await;
    let port = free_port();
    let proxy = Proxy::start(&config(port, &api.authority(), &petstore())).await;
    let version = proxy.version().await;
    let broken = proxy.dir.path().join("broken.json");
    std::fs::write(&broken, "{\"openapi\": \"3.0.3\", \"paths\": ").unwrap();
    let before = proxy.log().matches("OpenAPI spec").count();
    proxy.replace_config(&config(port, &api.authority(), broken.to_str().unwrap()));
    proxy.wait_log("OpenAPI spec", before).await;
    assert!(proxy.log().contains("openapi.schema.file"));
    assert_eq!(proxy.version().await, version);
    let mut c = McpClient::connect(&proxy.url(port, "/mcp")).await;
    assert_eq!(c.tool_names().await.len(), 7);
}

/// A spec with one `GET /<name>` operation per name.
fn spec_with(names: &[&str]) -> String {
    let paths: Vec<String> = names
        .iter()
        .map(|n| format!(r#""/{n}": {{"get": {{"operationId": "{n}", "responses": {{}}}}}}"#))
        .collect();
    format!(
        r#"{{"openapi": "3.0.3", "info": {{"title": "t", "version": "1"}}, "paths": {{{}}}}}"#,
        paths.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_spec_file_serves_new_sessions_and_a_broken_one_is_not_used() {
    let api = FakeUpstream::start("api").await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("api.json");
    std::fs::write(&spec, spec_with(&["one"])).unwrap();
    let config = format!(
        "binds:\n- port: {port}\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: api\n            openapi: {{schema: {{file: '{}'}}, host: '{}'}}\n",
        spec.display(),
        api.authority()
    );
    let proxy = Proxy::start(&config).await;
    let url = proxy.url(port, "/mcp");
    assert_eq!(McpClient::connect(&url).await.tool_names().await, ["one"]);

    let before = proxy.log().matches("OpenAPI spec changed").count();
    std::fs::write(&spec, spec_with(&["one", "two"])).unwrap();
    proxy.wait_log("OpenAPI spec changed", before).await;
    let mut names = McpClient::connect(&url).await.tool_names().await;
    names.sort();
    assert_eq!(names, ["one", "two"]);

    let before = proxy.log().matches("OpenAPI spec not used").count();
    std::fs::write(&spec, "{\"openapi\": ").unwrap();
    proxy.wait_log("OpenAPI spec not used", before).await;
    assert_eq!(McpClient::connect(&url).await.tool_names().await.len(), 2);
}
