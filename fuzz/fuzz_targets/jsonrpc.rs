//! MCP JSON-RPC handling: a client's POST body parsed and routed by its prefixed name or URI
//! as the gateway does, and an upstream's answers parsed, renamed for the client (the merge of
//! list results) and written back out.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorData, JsonRpcMessage, Reference,
    ServerJsonRpcMessage, ServerResult,
};
use tollgate_data_plane::mcp::names::Naming;
use tollgate_shared::config::model::PrefixMode;

/// Target names as the config allows them: no `_`, no `+`.
const TARGETS: [&str; 3] = ["fs", "k8s.tools", "web"];

/// The client-facing name or URI a request is routed by, and whether it is a URI.
fn routed_by(request: &ClientRequest) -> Option<(&str, bool)> {
    match request {
        ClientRequest::CallToolRequest(r) => Some((&r.params.name, false)),
        ClientRequest::GetPromptRequest(r) => Some((&r.params.name, false)),
        ClientRequest::ReadResourceRequest(r) => Some((&r.params.uri, true)),
        ClientRequest::SubscribeRequest(r) => Some((&r.params.uri, true)),
        ClientRequest::UnsubscribeRequest(r) => Some((&r.params.uri, true)),
        ClientRequest::CompleteRequest(r) => match &r.params.r#ref {
            Reference::Prompt(p) => Some((&p.name, false)),
            Reference::Resource(t) => Some((&t.uri, true)),
            _ => None,
        },
        _ => None,
    }
}

/// Splitting a routed name gives a target and a name that name the same thing again.
fn route(naming: Naming, targets: &[&str], text: &str, uri: bool) {
    let split = if uri {
        naming.split_uri(targets, text)
    } else {
        naming.split_name(targets, text)
    };
    if let Some((index, own)) = split {
        let target = targets[index];
        let again = if uri {
            naming.uri(target, own)
        } else {
            naming.name(target, own)
        };
        assert_eq!(again, text, "split and join disagree");
    }
}

/// An upstream's list, renamed for the client, routes back to that upstream and item.
fn merge(naming: Naming, targets: &[&str], result: &mut ServerResult) {
    for (index, target) in targets.iter().enumerate() {
        let names: Vec<(String, String, bool)> = match result {
            ServerResult::ListToolsResult(r) => r
                .tools
                .iter()
                .map(|t| (t.name.to_string(), naming.name(target, &t.name), false))
                .collect(),
            ServerResult::ListPromptsResult(r) => r
                .prompts
                .iter()
                .map(|p| (p.name.clone(), naming.name(target, &p.name), false))
                .collect(),
            ServerResult::ListResourcesResult(r) => r
                .resources
                .iter()
                .map(|x| (x.uri.clone(), naming.uri(target, &x.uri), true))
                .collect(),
            ServerResult::ListResourceTemplatesResult(r) => r
                .resource_templates
                .iter()
                .map(|x| {
                    (
                        x.uri_template.clone(),
                        naming.uri(target, &x.uri_template),
                        true,
                    )
                })
                .collect(),
            _ => return,
        };
        for (own, shown, uri) in names {
            let split = if uri {
                naming.split_uri(targets, &shown)
            } else {
                naming.split_name(targets, &shown)
            };
            assert_eq!(split, Some((index, own.as_str())), "{shown} routes back");
        }
    }
    result.strip_result_type_for_legacy_peer();
    result.strip_non_object_output_for_legacy_peer();
}

fuzz_target!(|data: &[u8]| {
    let namings = [
        (
            Naming::new(TARGETS.len(), PrefixMode::Conditional),
            &TARGETS[..],
        ),
        (Naming::new(1, PrefixMode::Conditional), &TARGETS[..1]),
        (Naming::new(1, PrefixMode::Always), &TARGETS[..1]),
    ];
    if let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(data) {
        if let JsonRpcMessage::Request(req) = &message {
            let _ = req.request.method();
            if let Some((text, uri)) = routed_by(&req.request) {
                for (naming, targets) in namings {
                    route(naming, targets, text, uri);
                }
                // The answer to an unknown name quotes it back.
                let error = ErrorData::invalid_params(format!("unknown tool `{text}`"), None);
                let reply: ServerJsonRpcMessage =
                    JsonRpcMessage::error(error, Some(req.id.clone()));
                serde_json::to_string(&reply).expect("a reply serialises");
            }
        }
        serde_json::to_vec(&message).expect("a parsed message serialises");
    }
    if let Ok(mut message) = serde_json::from_slice::<ServerJsonRpcMessage>(data) {
        if let JsonRpcMessage::Response(resp) = &mut message {
            for (naming, targets) in namings {
                merge(naming, targets, &mut resp.result);
            }
        }
        serde_json::to_string(&message).expect("a parsed message serialises");
    }
});
