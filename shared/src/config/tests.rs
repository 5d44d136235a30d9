use std::collections::HashMap;

use super::model::*;
use super::*;

fn env() -> HashMap<String, String> {
    HashMap::from([
        ("OPENAI_API_KEY".to_string(), "sk-openai".to_string()),
        ("ANTHROPIC_API_KEY".to_string(), "sk-ant".to_string()),
    ])
}

/// A walkthrough seed config: from `TOLLGATE_SEED_DIR` (which `tests/run.sh` sets), else from
/// the `shared/` folder beside the checkout.
pub(crate) fn seed(name: &str) -> String {
    let dir = std::env::var("TOLLGATE_SEED_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/seed/configs").to_string()
    });
    let path = std::path::Path::new(&dir).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "seed config {}: {e} (set TOLLGATE_SEED_DIR)",
            path.display()
        )
    })
}

fn errors(text: &str) -> Vec<ConfigError> {
    load_str(text, "t.yaml", &env()).unwrap_err().0
}

/// Each `(path, message)` is among `errs` (an error at that path whose message contains it).
fn assert_reported<P: AsRef<str>>(
    errs: &[ConfigError],
    expected: impl IntoIterator<Item = (P, &'static str)>,
) {
    for (path, message) in expected {
        let path = path.as_ref();
        assert!(
            errs.iter()
                .any(|e| e.path == path && e.message.contains(message)),
            "{path}: {errs:?}"
        );
    }
}

#[test]
fn seed_anthropic_rate_limit_points_at_line_19() {
    let errs = errors(&seed("local-rate-limit-anthropic.yaml"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].line, 19, "{}", errs[0]);
    assert!(errs[0].message.starts_with("invalid YAML"), "{}", errs[0]);
}

#[test]
fn seed_failover_loads_with_both_spellings() {
    for file in ["model-failover.yaml", "model-failover.agw.yaml"] {
        let config = load_str(&seed(file), file, &env()).unwrap();
        let route = &config.binds[0].listeners[0].routes[0];
        assert_eq!(route.name, "failover-ai");
        assert_eq!(route.policies.retry.as_ref().unwrap().attempts, 2);
        let BackendKind::Ai(ai) = &route.backends[0].kind else {
            panic!()
        };
        let providers = &ai.groups[0];
        assert_eq!(providers.len(), 2);
        assert_eq!(providers[0].provider, Provider::Anthropic);
        assert_eq!(
            providers[1]
                .backend_auth
                .as_ref()
                .unwrap()
                .key()
                .unwrap()
                .expose(),
            "sk-openai"
        );
        assert_eq!(
            providers[0]
                .ai
                .as_ref()
                .and_then(|a| a.routes.as_ref())
                .unwrap()
                .classify("/v1/chat/completions"),
            RouteType::Completions
        );
    }
}

#[test]
fn secrets_serialize_as_their_reference() {
    let config = load_str(&seed("local-rate-limit.yaml"), "f", &env()).unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert!(json.contains("$OPENAI_API_KEY"), "{json}");
    assert!(!json.contains("sk-openai"), "{json}");
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let errs = errors(
        "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1'}]\n      policies:\n        localRateLimt: []\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!((e.line, e.column), (7, 9), "{e}");
    assert_eq!(
        e.path,
        "binds[0].listeners[0].routes[0].policies.localRateLimt"
    );
    assert!(e.message.contains("did you mean `localRateLimit`"), "{e}");
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "\
binds:
- port: 3000
  listeners:
  - routes:
    - backends: [{host: 'nope'}]
      policies:
        timeout: {requestTimeout: soon}
        retry: {codes: [999]}
    - matches: [{path: {regex: '('}}]
      backends: [{host: 'a:1'}]
    - bakends: []
";
    let errs = errors(text);
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![5, 7, 8, 9, 11, 11], "{errs:#?}");
    assert!(
        errs[4].message.contains("did you mean `backends`"),
        "{}",
        errs[4]
    );
}

/// A file large enough to have its parse trees freed apart loads and reports as a small one.
#[test]
fn a_large_file_loads_and_reports_alike() {
    let routes: String = (0..2_000)
        .map(|i| format!("    - name: r{i}\n      backends: [{{host: 'a:1'}}]\n"))
        .collect();
    let text = format!("binds:\n- port: 3000\n  listeners:\n  - routes:\n{routes}");
    assert!(text.len() > super::FREE_APART_ABOVE);
    let config = load_str(&text, "t.yaml", &env()).unwrap();
    assert_eq!(config.binds[0].listeners[0].routes.len(), 2_000);
    let broken = format!("{text}    - name: last\n      backends: [{{host: 'nope'}}]\n");
    let errs = errors(&broken);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].line, 4_006);
    assert_eq!(
        errs[0].path,
        "binds[0].listeners[0].routes[2000].backends[0].host"
    );
}

#[test]
fn unset_variables_are_named_with_their_path() {
    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1'}]\n      policies: {backendAuth: {key: $NOT_SET_ANYWHERE}}\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.contains("`NOT_SET_ANYWHERE` is not set"),
        "{}",
        errs[0]
    );
    assert_eq!(
        errs[0].path,
        "binds[0].listeners[0].routes[0].policies.backendAuth.key"
    );
}

#[test]
fn durations_and_defaults() {
    let config = load_str(
        "config: {drainTimeout: 1h30m, maxBodySize: 1KiB}\nbinds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1'}]\n",
        "f",
        &env(),
    )
    .unwrap();
    assert_eq!(config.settings.drain_timeout.as_secs(), 5400);
    assert_eq!(config.settings.max_body_size, 1024);
    let route = &config.binds[0].listeners[0].routes[0];
    assert_eq!(route.name, "route0");
    assert_eq!(route.matches[0].path, PathMatch::PathPrefix("/".into()));
}

#[test]
fn version_follows_content_and_secrets() {
    let a = load_str(&seed("local-rate-limit.yaml"), "f", &env()).unwrap();
    let b = load_str(&seed("local-rate-limit.yaml"), "g", &env()).unwrap();
    assert_eq!(Snapshot::new(a.clone()).version, Snapshot::new(b).version);
    let mut other = env();
    other.insert("OPENAI_API_KEY".into(), "rotated".into());
    let c = load_str(&seed("local-rate-limit.yaml"), "f", &other).unwrap();
    assert_ne!(Snapshot::new(a).version, Snapshot::new(c).version);
}

#[test]
fn the_most_specific_level_sets_each_policy_whole() {
    let config = load_str(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        backendAuth: {key: route-key}\n        retry: {attempts: 2, codes: [503], backoff: 1s}\n        ai: {routes: {'*': passthrough}}\n      backends:\n      - ai:\n          name: p\n          provider: {openAI: {}}\n          policies: {backendAuth: {key: provider-key}}\n",
        "f",
        &env(),
    )
    .unwrap();
    let route = &config.binds[0].listeners[0].routes[0];
    let BackendKind::Ai(ai) = &route.backends[0].kind else {
        panic!()
    };
    let provider = &ai.groups[0][0];
    let effective = Policies::effective(&[&route.policies, &provider.policies()]);
    assert_eq!(
        effective
            .backend_auth
            .as_ref()
            .unwrap()
            .key()
            .unwrap()
            .expose(),
        "provider-key"
    );
    assert_eq!(effective.retry, route.policies.retry);
    assert_eq!(effective.ai, route.policies.ai);

    let partial_retry = Policies {
        retry: Some(Retry {
            attempts: 5,
            codes: vec![502],
            backoff: None,
        }),
        ..Policies::default()
    };
    let effective = Policies::effective(&[&route.policies, &partial_retry]);
    assert_eq!(
        effective.retry.unwrap().backoff,
        None,
        "fields are not merged"
    );
}

#[test]
fn frontend_policies_are_checked_and_unimplemented_fields_named() {
    let errs = errors(
        "frontendPolicies:\n  http:\n    http1IdleTimeout: 0s\n    headerReadTimeout: soon\n    http2FrameSize: 1\n  tcp:\n    maxConnections: 0\n  tls: {cipherSuites: [x]}\n  proxyProtocol: {version: v3}\n  networkAuthorization: {rules: ['source.address ==']}\nbinds: []\n",
    );
    assert_reported(
        &errs,
        [
            ("frontendPolicies.tls.cipherSuites", "is not supported"),
            (
                "frontendPolicies.proxyProtocol.version",
                "expected v1, v2 or all",
            ),
            (
                "frontendPolicies.networkAuthorization.rules[0]",
                "invalid CEL expression",
            ),
            (
                "frontendPolicies.http.http2FrameSize",
                "between 16384 and 16777215",
            ),
            ("frontendPolicies.http.headerReadTimeout", "soon"),
            (
                "frontendPolicies.http.http1IdleTimeout",
                "http1IdleTimeout must be longer than 0s",
            ),
            (
                "frontendPolicies.tcp.maxConnections",
                "maxConnections must be at least 1",
            ),
        ],
    );
}

#[test]
fn a_huge_fill_interval_is_refused_where_it_is_written() {
    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1'}]\n      policies:\n        localRateLimit:\n        - {maxTokens: 1, tokensPerFill: 1, fillInterval: 100000000years}\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].line, 8, "{}", errs[0]);
    assert!(errs[0].message.contains("at most 366d"), "{}", errs[0]);
    assert!(errs[0].to_string().starts_with("t.yaml:8:"), "{}", errs[0]);
}

#[test]
fn tls_settings_are_checked_where_they_are_written() {
    let errs = errors(
        "frontendPolicies:
  tls:
    alpn: [h3]
    keyExchangeGroups: [X25519]
binds:
- port: 1
  listeners:
  - name: tcp
    protocol: TLS
  - name: no-tls
    protocol: HTTPS
  - name: old
    protocol: HTTPS
    tls: {cert: c.pem, key: k.pem, minTLSVersion: TLS_V1_0, cipherSuites: [x]}
- port: 2
  listeners:
  - tls: {cert: c.pem, key: k.pem}
    routes:
    - backends: [{host: 'a:1'}]
      policies:
        backendTLS: {cert: c.pem, insecure: true, insecureHost: true}
- port: 3
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        backendTLS: {cert: c.pem, hostname: 'a:1', insecureHost: true, subjectAltNames: [a]}
",
    );
    assert_reported(
        &errs,
        [
            ("frontendPolicies.tls.alpn[0]", "`h3` is not served"),
            ("frontendPolicies.tls.keyExchangeGroups", "not supported"),
            ("binds[0].listeners[0].protocol", "`TLS` is not supported"),
            ("binds[0].listeners[1].protocol", "HTTPS needs `tls`"),
            (
                "binds[0].listeners[2].tls.minTLSVersion",
                "TLS 1.2 and 1.3 only",
            ),
            ("binds[0].listeners[2].tls.cipherSuites", "not supported"),
            ("binds[1].listeners[0].tls", "needs `protocol: HTTPS`"),
            (
                "binds[1].listeners[0].routes[0].policies.backendTLS.insecureHost",
                "keep one",
            ),
            (
                "binds[2].listeners[0].routes[0].policies.backendTLS.key",
                "needs its `key`",
            ),
            (
                "binds[2].listeners[0].routes[0].policies.backendTLS.hostname",
                "not a hostname",
            ),
            (
                "binds[2].listeners[0].routes[0].policies.backendTLS.subjectAltNames",
                "not checked",
            ),
        ],
    );
}

#[test]
fn backend_tls_alpn_lists_only_protocols_the_gateway_speaks() {
    let errs = errors(
        "binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        backendTLS: {alpn: [http/1.1, h3]}
    - backends: [{host: 'a:1'}]
      policies:
        backendTLS: {alpn: []}
    - backends: [{host: 'a:1'}]
      policies:
        backendTLS: {alpn: [h2, http/1.1]}
",
    );
    let found: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "binds[0].listeners[0].routes[0].policies.backendTLS.alpn[1]",
                "ALPN protocol `h3` is not served; use `h2` and/or `http/1.1`"
            ),
            (
                "binds[0].listeners[0].routes[1].policies.backendTLS.alpn",
                "`alpn` needs at least one protocol"
            ),
        ]
    );
}

#[test]
fn referenced_files_name_their_fields() {
    let config = load_str(
        "binds:
- port: 1
  listeners:
  - protocol: HTTPS
    tls: {cert: c.pem, key: k.pem, root: ca.pem}
    routes:
    - backends: [{host: 'a:1'}]
      policies:
        backendTLS: {root: up.pem}
",
        "f",
        &env(),
    )
    .unwrap();
    let files: Vec<(String, String)> = config
        .referenced_files()
        .into_iter()
        .map(|(field, p)| (field, p.display().to_string()))
        .collect();
    let expected = [
        ("binds[0].listeners[0].tls.cert", "c.pem"),
        ("binds[0].listeners[0].tls.key", "k.pem"),
        ("binds[0].listeners[0].tls.root", "ca.pem"),
        (
            "binds[0].listeners[0].routes[0].policies.backendTLS.root",
            "up.pem",
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(files, expected);
}

#[test]
fn a_listener_tls_version_wins_over_frontend_policies_bound_by_bound() {
    let config = load_str(
        "frontendPolicies:
  tls: {minVersion: TLS_V1_2, maxVersion: TLS_V1_2}
binds:
- port: 1
  listeners:
  - protocol: HTTPS
    tls: {cert: c.pem, key: k.pem, maxTLSVersion: TLS_V1_3}
    routes:
    - backends: [{host: 'a:1'}]
",
        "f",
        &env(),
    )
    .unwrap();
    use crate::config::model::TlsVersion;
    let listener = config.binds[0].listeners[0].tls.as_ref().unwrap();
    assert_eq!(
        config.frontend_policies.tls.versions(listener),
        (Some(TlsVersion::Tls12), Some(TlsVersion::Tls13))
    );
}

#[test]
fn jwt_auth_errors_name_their_fields() {
    let errs = errors(
        r#"binds:
- port: 1
  listeners:
  - routes:
    - name: url
      backends: [{host: 'a:1'}]
      policies:
        jwtAuth: {issuer: i, jwks: {url: 'idp/jwks'}}
    - name: both
      backends: [{host: 'a:1'}]
      policies:
        jwtAuth: {issuer: i, jwks: {file: j.json}, providers: []}
    - name: location
      backends: [{host: 'a:1'}]
      policies:
        jwtAuth:
          issuer: i
          jwks: {file: j.json}
          location: {header: {name: x}, cookie: {name: c}}
    - name: providers
      backends: [{host: 'a:1'}]
      policies:
        jwtAuth:
          mode: strict
          providers:
          - {issuer: i, jwks: {file: a.json}}
          - {issuer: i, jwks: '{"nokeys": 1}'}
    - name: no-jwks
      backends: [{host: 'a:1'}]
      policies:
        jwtAuth: {issuer: i, mode: lenient}
"#,
    );
    let route =
        |i: usize, rest: &str| format!("binds[0].listeners[0].routes[{i}].policies.jwtAuth{rest}");
    assert_reported(
        &errs,
        [
            (route(0, ".jwks.url"), "not an absolute http(s) URL"),
            (route(1, ""), "not both"),
            (route(2, ".location"), "exactly one of"),
            (route(3, ".providers[1].jwks"), "needs a `keys` list"),
            (route(4, ".mode"), "unknown value `lenient`"),
        ],
    );
}

#[test]
fn api_key_errors_name_their_fields() {
    let errs = errors(
        r#"binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        apiKey:
          mode: permissive
          keys: [{key: a}]
    - backends: [{host: 'a:1'}]
      policies:
        apiKey:
          keys:
          - {key: a}
          - {keyHash: 'sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb'}
    - backends: [{host: 'a:1'}]
      policies:
        apiKey: {keys: []}
    - backends: [{host: 'a:1'}]
      policies:
        apiKey: {keys: [{key: a}], location: {header: {name: 'Bad Name'}}}
"#,
    );
    let route =
        |i: usize, rest: &str| format!("binds[0].listeners[0].routes[{i}].policies.apiKey{rest}");
    assert_reported(
        &errs,
        [
            (route(0, ".mode"), "unknown value `permissive`"),
            (route(1, ".keys[1]"), "listed twice"),
            (route(2, ".keys"), "at least one key"),
            (route(3, ".location.header.name"), "not a valid header name"),
        ],
    );
    let errs = errors(
        r#"binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        apiKey:
          keys:
          - {keyHash: 'sha256:abc'}
          - {key: a, keyHash: 'sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb'}
          - {key: b, metadata: [x]}
          - {key: ''}
"#,
    );
    let at = |rest: &str| format!("binds[0].listeners[0].routes[0].policies.apiKey.keys{rest}");
    assert_reported(
        &errs,
        [
            (at("[0].keyHash"), "64 hex digits"),
            (at("[1]"), "exactly one of `key` or `keyHash`"),
            (at("[2].metadata"), "must be a map"),
            (at("[3].key"), "the key is empty"),
        ],
    );
}

#[test]
fn api_key_defaults_and_deferred_keys() {
    let text = "binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        apiKey: {keys: [{key: $CLIENT_KEY, metadata: {group: eng}}]}
";
    let mut env = env();
    env.insert("CLIENT_KEY".to_string(), "sk-client".to_string());
    let config = load_str(text, "f", &env).unwrap();
    let policy = config.binds[0].listeners[0].routes[0]
        .policies
        .api_key
        .clone()
        .unwrap();
    assert_eq!(policy.mode, AuthMode::Optional);
    assert_eq!(policy.location, CredentialLocation::default());
    assert_eq!(policy.keys[0].metadata["group"], "eng");
    let shown = serde_json::to_string(&config).unwrap();
    assert!(shown.contains("$CLIENT_KEY"), "{shown}");
    let ApiKeyCredential::Key(key) = &policy.keys[0].key else {
        panic!("a key");
    };
    assert_eq!(key.reference(), Some("$CLIENT_KEY"));
    assert_eq!(key.expose(), "sk-client");
}

#[test]
fn basic_auth_defaults_errors_and_the_htpasswd_file_is_referenced() {
    let config = load_str(
        "binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        basicAuth: {htpasswd: {file: users/.htpasswd}}
",
        "f",
        &env(),
    )
    .unwrap();
    let basic = config.binds[0].listeners[0].routes[0]
        .policies
        .basic_auth
        .clone()
        .unwrap();
    assert_eq!(basic.mode, AuthMode::Optional);
    assert_eq!(basic.realm, "Restricted");
    assert_eq!(
        basic.authorization_location,
        CredentialLocation::authorization("Basic ")
    );
    assert_eq!(
        config.referenced_files(),
        [(
            "binds[0].listeners[0].routes[0].policies.basicAuth.htpasswd.file".to_string(),
            "users/.htpasswd".into()
        )]
    );
    let errs = errors(
        r#"binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        basicAuth: {htpasswd: "user:$apr1$x$y"}
    - backends: [{host: 'a:1'}]
      policies:
        basicAuth: {htpasswd: {file: f}, realm: 'say "hi"'}
    - backends: [{host: 'a:1'}]
      policies:
        basicAuth: {htpasswd: {file: f}, authorizationLocation: {cookie: {name: ''}}}
"#,
    );
    let route = |i: usize, rest: &str| {
        format!("binds[0].listeners[0].routes[{i}].policies.basicAuth{rest}")
    };
    assert_reported(
        &errs,
        [
            (route(0, ".htpasswd"), "invalid type"),
            (route(1, ".realm"), "without quotes"),
            (route(2, ".authorizationLocation"), "name is empty"),
        ],
    );
}

#[test]
fn jwt_auth_defaults_and_jwks_files_are_referenced() {
    let config = load_str(
        "binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        jwtAuth: {issuer: i, audiences: [a], jwks: {file: keys/jwks.json}}
",
        "f",
        &env(),
    )
    .unwrap();
    let jwt = config.binds[0].listeners[0].routes[0]
        .policies
        .jwt_auth
        .clone()
        .unwrap();
    assert_eq!(jwt.mode, JwtMode::Optional);
    assert_eq!(jwt.location, CredentialLocation::default());
    assert_eq!(jwt.providers[0].jwks, Jwks::File("keys/jwks.json".into()));
    let files = config.referenced_files();
    assert_eq!(
        files,
        [(
            "binds[0].listeners[0].routes[0].policies.jwtAuth.providers[0].jwks.file".to_string(),
            "keys/jwks.json".into()
        )]
    );
}

#[test]
fn mcp_authentication_errors_name_their_fields() {
    let errs = errors(
        r#"binds:
- port: 1
  listeners:
  - routes:
    - name: no-issuer
      backends: [{host: 'a:1'}]
      policies:
        mcpAuthentication: {jwks: {url: 'http://idp/jwks'}}
    - name: okta
      backends: [{host: 'a:1'}]
      policies:
        mcpAuthentication: {issuer: i, jwks: {url: 'http://idp/jwks'}, provider: {okta: {}}}
    - name: both
      backends: [{host: 'a:1'}]
      policies:
        jwtAuth: {issuer: i, jwks: {url: 'http://idp/jwks'}}
        mcpAuthentication: {issuer: i, jwks: {url: 'http://idp/jwks'}}
    - name: auth0
      backends: [{host: 'a:1'}]
      policies:
        mcpAuthentication: {issuer: i, jwks: {url: 'http://idp/jwks'}, provider: {auth0: {}}}
    - name: resource
      backends: [{host: 'a:1'}]
      policies:
        mcpAuthentication:
          issuer: i
          jwks: {url: 'http://idp/jwks'}
          resourceMetadata: {resource: /mcp}
"#,
    );
    let route = |i: usize, rest: &str| {
        format!("binds[0].listeners[0].routes[{i}].policies.mcpAuthentication{rest}")
    };
    assert_reported(
        &errs,
        [
            (route(0, ""), "needs `issuer` and `jwks`"),
            (route(1, ".provider.okta"), "unknown field `okta`"),
            (route(2, ""), "not both"),
            (route(3, ".audiences"), "needs an audience"),
            (route(4, ".resourceMetadata.resource"), "absolute URL"),
        ],
    );
}

#[test]
fn mcp_authentication_is_strict_by_default_and_its_jwks_file_is_referenced() {
    let config = load_str(
        "binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        mcpAuthentication:
          issuer: http://idp
          jwks: {file: keys/idp.json}
          resourceMetadata: {scopesSupported: [read]}
",
        "f",
        &env(),
    )
    .unwrap();
    let policies = &config.binds[0].listeners[0].routes[0].policies;
    let mcp = policies.mcp_authentication.as_ref().unwrap();
    assert_eq!(mcp.jwt.mode, JwtMode::Strict);
    assert_eq!(
        mcp.resource_metadata["scopes_supported"],
        serde_json::json!(["read"])
    );
    assert_eq!(
        config.referenced_files(),
        [(
            "binds[0].listeners[0].routes[0].policies.mcpAuthentication.jwks.file".to_string(),
            "keys/idp.json".into()
        )]
    );
}

#[test]
fn rate_limit_keys_are_checked() {
    let errs = errors(
        r#"binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        localRateLimit:
        - {maxTokens: 1, tokensPerFill: 1, fillInterval: 1s, key: 'jwt.sub +'}
        - {maxTokens: 1, tokensPerFill: 1, fillInterval: 1s, maxKeys: 10}
        - {maxTokens: 1, tokensPerFill: 1, fillInterval: 1s, key: jwt.sub, maxKeys: 0}
"#,
    );
    let entry = |i: usize, rest: &str| {
        format!("binds[0].listeners[0].routes[0].policies.localRateLimit[{i}]{rest}")
    };
    assert_reported(
        &errs,
        [
            (entry(0, ".key"), "not a CEL expression"),
            (entry(1, ".maxKeys"), "set `key` too"),
            (entry(2, ".maxKeys"), "maxKeys must be 1..="),
        ],
    );
}

#[test]
fn authorization_rules_are_compiled_and_errors_point_at_the_rule() {
    let text = r#"binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        authorization:
          rules:
          - 'jwt.sub == "a"'
          - deny: 'source.address == "10.0.0.1"'
          - require: 'request.method =='
        mcpAuthorization:
          rules: [{permit: 'true'}]
"#;
    let errs = errors(text);
    let policy = "binds[0].listeners[0].routes[0].policies";
    assert_reported(
        &errs,
        [
            (
                format!("{policy}.authorization.rules[2]"),
                "invalid CEL expression",
            ),
            (format!("{policy}.mcpAuthorization.rules[0]"), ""),
        ],
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    let line = errs
        .iter()
        .find(|e| e.path.ends_with("rules[2]"))
        .unwrap()
        .line;
    assert_eq!(line, 11);
    let ok = text.replace("'request.method =='", "'request.method != \"DELETE\"'");
    let ok = ok.replace("{permit: 'true'}", "'mcp.tool.name == \"echo\"'");
    let config = load_str(&ok, "f", &env()).unwrap();
    let policies = &config.binds[0].listeners[0].routes[0].policies;
    assert_eq!(
        policies.authorization.as_ref().unwrap().rules,
        [
            Rule::Allow("jwt.sub == \"a\"".into()),
            Rule::Deny("source.address == \"10.0.0.1\"".into()),
            Rule::Require("request.method != \"DELETE\"".into()),
        ]
    );
    assert!(policies.mcp_authorization.is_some());
}

#[test]
fn backend_auth_is_a_key_or_a_passthrough() {
    let errs = errors(
        r#"binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        backendAuth: {key: k, passthrough: {}}
    - backends: [{host: 'a:1'}]
      policies:
        backendAuth: {passthrough: {location: {cookie: {name: ''}}}}
    - backends:
      - ai:
          name: o
          provider: {openAI: {}}
          policies: {backendAuth: {passthrough: {}}}
"#,
    );
    let route = |i: usize| format!("binds[0].listeners[0].routes[{i}]");
    assert_reported(
        &errs,
        [
            (
                format!("{}.policies.backendAuth", route(0)),
                "exactly one of",
            ),
            (
                format!("{}.policies.backendAuth.passthrough.location", route(1)),
                "empty",
            ),
            (format!("{}.backends[0].ai", route(2)), "route policy"),
        ],
    );
}

#[test]
fn header_modifiers_take_agentgateways_map_form_and_the_list_form() {
    let config = load_str(
        r#"binds:
- port: 1
  listeners:
  - routes:
    - backends: [{host: 'a:1'}]
      policies:
        requestHeaderModifier:
          add: {x-req-added: value, X-Two: "2"}
          remove: [x-illegal-header]
        responseHeaderModifier:
          set: [{name: x-set, value: v}]
"#,
        "f",
        &env(),
    )
    .unwrap();
    let policies = &config.binds[0].listeners[0].routes[0].policies;
    let request = policies.request_header_modifier.as_ref().unwrap();
    let added: Vec<(&str, &str)> = request
        .add
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(added, [("x-req-added", "value"), ("x-two", "2")]);
    let response = policies.response_header_modifier.as_ref().unwrap();
    assert_eq!(response.set[0].0, "x-set");
    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1'}]\n      policies:\n        requestHeaderModifier:\n          set: {'bad name': v}\n",
    );
    assert_reported(
        &errs,
        [(
            "binds[0].listeners[0].routes[0].policies.requestHeaderModifier.set.bad name"
                .to_string(),
            "not a valid header name",
        )],
    );
}

#[test]
fn an_emptied_file_is_not_a_config_but_binds_empty_is() {
    for text in ["", "\n", "# only a comment\n# and another\n"] {
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{text:?}: {errs:?}");
        assert!(errs[0].message.contains("the file is empty"), "{errs:?}");
    }
    let config = load_str("binds: []\n", "f", &env()).unwrap();
    assert!(config.binds.is_empty());
}

#[test]
fn agentgateway_features_tollgate_lacks_are_named_as_such_and_typos_are_typos() {
    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1'}]\n      policies:\n        csrf: {}\n        retri: {}\n",
    );
    let policy = "binds[0].listeners[0].routes[0].policies";
    assert_reported(
        &errs,
        [
            (
                format!("{policy}.csrf"),
                "`csrf` is an agentgateway feature Tollgate does not support",
            ),
            (format!("{policy}.retri"), "did you mean `retry`"),
        ],
    );
}

#[test]
fn a_direct_response_route_needs_no_backend_and_is_checked() {
    let config = load_str(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        directResponse: {body: hello!, status: 200}\n",
        "f",
        &env(),
    )
    .unwrap();
    let route = &config.binds[0].listeners[0].routes[0];
    assert!(route.backends.is_empty());
    let direct = route.policies.direct_response.as_ref().unwrap();
    assert_eq!((direct.status, &direct.body[..]), (200, &b"hello!"[..]));
    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        directResponse: {status: 99}\n    - policies: {}\n",
    );
    assert_reported(
        &errs,
        [
            (
                "binds[0].listeners[0].routes[0].policies.directResponse.status".to_string(),
                "200 to 599",
            ),
            (
                "binds[0].listeners[0].routes[1].backends".to_string(),
                "or a `directResponse`",
            ),
        ],
    );
}

#[test]
fn redirects_rewrites_and_mirrors_are_checked_where_written() {
    let route = |policies: &str, backends: &str| {
        format!("    - matches: [{{path: {{exact: /x}}}}]\n      policies: {policies}\n{backends}")
    };
    let host = "      backends: [{host: \"127.0.0.1:1\"}]\n";
    let ai = "      backends: [{ai: {name: m, provider: {openAI: {}}}}]\n";
    let routes = [
        route("{urlRewrite: {authority: {host: \"a:1\"}}}", host),
        route("{urlRewrite: {authority: sideways}}", host),
        route("{urlRewrite: {authority: {full: a, port: 2}}}", host),
        route("{urlRewrite: {}}", host),
        route("{requestRedirect: {authority: auto, status: 200}}", ""),
        route("{requestRedirect: {scheme: ftp}}", ""),
        route(
            "{requestRedirect: {path: {prefix: /y}}, directResponse: {status: 200}}",
            "",
        ),
        route(
            "{requestMirror: {backend: {host: \"127.0.0.1:2\"}, percentage: 50}}",
            host,
        ),
        route(
            "{requestMirror: {backend: {host: \"127.0.0.1:2\"}, percentage: 1}}",
            ai,
        ),
        route(
            "{requestMirror: {backend: {service: {name: x, port: 1}}, percentage: 1}}",
            host,
        ),
        route("{requestRedirect: {scheme: https}}", host),
    ];
    let errs = errors(&format!(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n{}",
        routes.concat()
    ));
    let at = |i: usize, field: &str| format!("binds[0].listeners[0].routes[{i}].{field}");
    assert_reported(
        &errs,
        [
            (
                at(0, "policies.urlRewrite.authority.host"),
                "not a host name (without a port)",
            ),
            (
                at(1, "policies.urlRewrite.authority"),
                "expected `auto` or `none`",
            ),
            (at(2, "policies.urlRewrite.authority"), "exactly one of"),
            (at(3, "policies.urlRewrite"), "needs `path` or `authority`"),
            (
                at(4, "policies.requestRedirect.authority"),
                "applies to `urlRewrite`",
            ),
            (at(4, "policies.requestRedirect.status"), "300 to 399"),
            (
                at(5, "policies.requestRedirect.scheme"),
                "unknown scheme `ftp`",
            ),
            (at(10, "backends"), "its backends would never be called"),
            (
                at(6, "policies.requestRedirect"),
                "`directResponse` or a `requestRedirect`, not both",
            ),
            (
                at(6, "policies.requestRedirect.path.prefix"),
                "every match of the route to be a `pathPrefix`",
            ),
            (at(7, "policies.requestMirror.percentage"), "0.0 to 1.0"),
            (at(8, "policies.requestMirror"), "`host` backends only"),
            (
                at(9, "policies.requestMirror.backend.service"),
                "Tollgate does not support",
            ),
        ],
    );
}

#[test]
fn ai_request_edits_are_checked_and_combine_part_by_part() {
    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        ai:\n          prompts: {prepend: [{role: robot, content: x}]}\n          modelAliases: {fast: \"gpt-*\"}\n          overrides: {messages: []}\n          defaults: {stream: true}\n      backends: [{host: \"127.0.0.1:1\"}]\n",
    );
    let at = |field: &str| format!("binds[0].listeners[0].routes[0].policies.ai.{field}");
    assert_reported(
        &errs,
        [
            (at("prompts.prepend[0].role"), "unknown role `robot`"),
            (at("modelAliases.fast"), "to a model name"),
            (at("overrides.messages"), "cannot be set here"),
            (at("defaults.stream"), "cannot be set here"),
        ],
    );
    let config = load_str(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        ai:\n          prompts: {append: [{role: system, content: brief}]}\n          defaults: {temperature: 0.5}\n      backends:\n      - ai:\n          name: p\n          provider: {openAI: {}}\n          routes: {/v1/messages: messages}\n          policies:\n            ai: {defaults: {max_tokens: 9}}\n",
        "f",
        &env(),
    )
    .unwrap();
    let route = &config.binds[0].listeners[0].routes[0];
    let BackendKind::Ai(ai) = &route.backends[0].kind else {
        panic!("an ai backend")
    };
    let provider = ai.groups[0][0].policies();
    let effective = Policies::effective(&[&route.policies, &provider])
        .ai
        .unwrap();
    assert_eq!(effective.prompts.unwrap().append[0].content, "brief");
    assert_eq!(
        effective.defaults["max_tokens"], 9,
        "the provider's defaults win whole"
    );
    assert!(!effective.defaults.contains_key("temperature"));
    assert!(
        effective.routes.is_some(),
        "inline routes are the provider's ai.routes"
    );
}

#[test]
fn health_policies_are_checked_where_written() {
    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - host: \"127.0.0.1:1\"\n        policies: {health: {unhealthyExpression: \"response.code >=\", eviction: {restoreHealth: 2, consecutiveFailures: 0, duration: 0s}}}\n      - ai:\n          name: p\n          provider: {openAI: {}}\n          policies: {health: {eviction: {healthThreshold: -1}}}\n      - mcp: {targets: [{name: t, stdio: {cmd: x}}]}\n        policies: {health: {}}\n",
    );
    let at = |field: &str| format!("binds[0].listeners[0].routes[0].backends[{field}");
    assert_reported(
        &errs,
        [
            (at("0].policies.health.unhealthyExpression"), "invalid CEL"),
            (
                at("0].policies.health.eviction.restoreHealth"),
                "0.0 to 1.0",
            ),
            (
                at("0].policies.health.eviction.consecutiveFailures"),
                "at least 1",
            ),
            (at("0].policies.health.eviction.duration"), "at most 1h"),
            (
                at("1].ai.policies.health.eviction.healthThreshold"),
                "0.0 to 1.0",
            ),
            (at("2].policies.health"), "applies to `host` backends"),
        ],
    );
}

#[test]
fn an_empty_provider_key_needs_an_explicit_empty_default() {
    let route = |key: &str| {
        format!(
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies: {{backendAuth: {{key: \"{key}\"}}}}\n      backends: [{{ai: {{name: p, provider: {{openAI: {{}}}}}}}}]\n"
        )
    };
    let config = load_str(&route("${UNSET_KEY:-}"), "f", &env()).unwrap();
    let policies = &config.binds[0].listeners[0].routes[0].policies;
    let key = policies.backend_auth.as_ref().unwrap().key().unwrap();
    assert_eq!(key.expose(), "");
    assert_eq!(key.variables(), ["UNSET_KEY"]);
    assert_reported(
        &errors(&route("")),
        [(
            "binds[0].listeners[0].routes[0].policies.backendAuth.key".to_string(),
            "`${VAR:-}` allows that",
        )],
    );
}

#[test]
fn the_committed_json_schema_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/config.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        committed == json_schema(),
        "schema/config.json is stale: run `cargo run --bin tollgate -- schema > schema/config.json`"
    );
}

#[test]
fn tracing_over_http_takes_its_path_headers_and_agentgateways_frontend_spelling() {
    let config = load_str(
        "config:\n  tracing:\n    otlpEndpoint: https://otel.example.com/api/public/otel/v1/traces\n    otlpProtocol: http\n    headers:\n      Authorization: Basic c2VjcmV0\nbinds: []\n",
        "t.yaml",
        &env(),
    )
    .unwrap();
    let tracing = config.settings.tracing.as_ref().unwrap();
    assert_eq!(tracing.otlp_endpoint, "https://otel.example.com");
    assert_eq!(tracing.path, "/api/public/otel/v1/traces");
    assert_eq!(tracing.headers[0].0, "authorization");
    let dump = serde_json::to_string(&config).unwrap();
    assert!(!dump.contains("c2VjcmV0"), "{dump}");

    // A `$VAR` value is a secret the proxy resolves: dumps show the reference.
    let config = load_str(
        "config:\n  tracing:\n    otlpEndpoint: http://otel:4318\n    otlpProtocol: http\n    headers: {x-key: $OPENAI_API_KEY}\nbinds: []\n",
        "t.yaml",
        &env(),
    )
    .unwrap();
    let header = &config.settings.tracing.as_ref().unwrap().headers[0].1;
    assert_eq!(header.expose(), "sk-openai");
    assert_eq!(header.reference(), Some("$OPENAI_API_KEY"));
    let dump = serde_json::to_string(&config).unwrap();
    assert!(
        dump.contains("$OPENAI_API_KEY") && !dump.contains("sk-openai"),
        "{dump}"
    );

    let config = load_str(
        "frontendPolicies:\n  tracing:\n    host: localhost:4317\n    randomSampling: true\n    attributes: {tenant: 'request.headers[\"x-tenant\"]'}\n  accessLog:\n    filter: response.code >= 400\n    add: {tenant: 'request.path'}\n    remove: [duration]\n  http:\n    maxBufferSize: 1MiB\nbinds: []\n",
        "t.yaml",
        &env(),
    )
    .unwrap();
    let tracing = config.settings.tracing.as_ref().unwrap();
    assert_eq!(tracing.otlp_endpoint, "http://localhost:4317");
    assert_eq!(tracing.otlp_protocol, OtlpProtocol::Grpc);
    assert_eq!(tracing.random_sampling, 1.0);
    assert!(tracing.fields.add.contains_key("tenant"));
    let logging = &config.settings.logging;
    assert_eq!(logging.filter.as_deref(), Some("response.code >= 400"));
    assert_eq!(logging.fields.remove, ["duration"]);
    assert!(logging.fields.add.contains_key("tenant"));
    assert_eq!(config.settings.max_body_size, 1024 * 1024);

    // `accessLog.otlp` alone sits beside `config.logging`'s filter.
    let config = load_str(
        "config:\n  logging: {filter: 'true'}\nfrontendPolicies:\n  accessLog:\n    otlp: {host: 'localhost:4318', protocol: http}\nbinds: []\n",
        "t.yaml",
        &env(),
    )
    .unwrap();
    let logging = &config.settings.logging;
    assert_eq!(logging.filter.as_deref(), Some("true"));
    let otlp = logging.otlp.as_ref().unwrap();
    assert_eq!(otlp.endpoint, "http://localhost:4318");
    assert_eq!(otlp.path, "/v1/logs");
}

#[test]
fn frontend_spellings_of_settings_conflict_with_config_and_are_checked() {
    let errs = errors(
        "config:\n  maxBodySize: 1MiB\n  tracing: {otlpEndpoint: 'http://a:4317', path: /x}\n  logging: {filter: 'true'}\nfrontendPolicies:\n  http: {maxBufferSize: 2MiB}\n  tracing: {host: 'http://b:4317'}\n  accessLog: {filter: 'request.', otlp: {host: 'b:4317', service: {}}}\nbinds: []\n",
    );
    assert_reported(
        &errs,
        [
            (
                "frontendPolicies.http.maxBufferSize",
                "`config.maxBodySize` is set too",
            ),
            (
                "frontendPolicies.accessLog",
                "`config.logging.filter/fields` is set too",
            ),
            ("frontendPolicies.accessLog.filter", "invalid CEL"),
            (
                "frontendPolicies.accessLog.otlp.service",
                "an agentgateway feature Tollgate does not support",
            ),
            ("config.tracing.path", "gRPC export has none"),
        ],
    );
    let errs = errors(
        "frontendPolicies:\n  tracing:\n    host: 'b:4317'\n    resources: {service.name: 'request.'}\n    policies: {requestHeaderModifier: {remove: [x]}, backendTLS: {}}\nbinds: []\n",
    );
    assert_reported(
        &errs,
        [
            (
                "frontendPolicies.tracing.resources.service.name",
                "invalid CEL",
            ),
            (
                "frontendPolicies.tracing.policies.requestHeaderModifier.remove",
                "nothing to remove",
            ),
            (
                "frontendPolicies.tracing.policies.backendTLS",
                "an agentgateway feature Tollgate does not support",
            ),
        ],
    );
    let errs = errors("frontendPolicies:\n  tracing: {host: 'http://b:4317'}\nbinds: []\n");
    assert_reported(
        &errs,
        [("frontendPolicies.tracing.host", "not a host:port")],
    );
    let errs = errors(
        "config:\n  tracing: {otlpEndpoint: 'grpc://a:4317', otlpProtocol: udp}\nfrontendPolicies:\n  tcp: {keepalives: {time: 0s, retries: 0}}\n  http: {http2WindowSize: 0, maxConnectionDuration: 0s}\nbinds: []\n",
    );
    assert_reported(
        &errs,
        [
            ("config.tracing.otlpProtocol", "expected grpc or http"),
            (
                "config.tracing.otlpEndpoint",
                "not an http:// or https:// URL",
            ),
            ("frontendPolicies.tcp.keepalives.time", "at least 1s"),
            ("frontendPolicies.tcp.keepalives.retries", "at least 1"),
            ("frontendPolicies.http.http2WindowSize", "between 1 and"),
            (
                "frontendPolicies.http.maxConnectionDuration",
                "longer than 0s",
            ),
        ],
    );
}

#[test]
fn openapi_targets_take_a_file_or_inline_spec_and_name_what_is_not_supported() {
    let target = |body: &str| {
        format!(
            "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: api\n            openapi:\n{body}"
        )
    };
    let config = load_str(
        &target("              schema: {file: ./api.json}\n              host: localhost:8080\n"),
        "t.yaml",
        &env(),
    )
    .unwrap();
    let files = config.referenced_files();
    assert_eq!(
        files,
        [(
            "binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].openapi.schema.file"
                .to_string(),
            std::path::PathBuf::from("./api.json")
        )]
    );
    let at = "binds[0].listeners[0].routes[0].backends[0].mcp.targets[0].openapi";
    let errs = errors(&target(
        "              schema: {url: 'http://specs/api.json'}\n              host: localhost:8080\n              port: 8080\n",
    ));
    assert_reported(
        &errs,
        [
            (format!("{at}.schema.url"), "does not support (yet)"),
            (
                format!("{at}.port"),
                "an agentgateway feature Tollgate does not support",
            ),
        ],
    );
    let errs = errors(&target(
        "              schema: {}\n              host: localhost:8080\n",
    ));
    assert_reported(&errs, [(format!("{at}.schema"), "exactly one of `file`")]);
}

#[test]
fn a2a_applies_to_host_backends() {
    let route = |backend: &str| {
        format!(
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies: {{a2a: {{}}}}\n      backends: [{backend}]\n"
        )
    };
    let config = load_str(&route("{host: 'a:1'}"), "t.yaml", &env()).unwrap();
    assert!(config.binds[0].listeners[0].routes[0].policies.a2a);
    let errs = errors(&route("{mcp: {targets: [{name: t, mcp: {host: 'a:1'}}]}}"));
    assert_reported(
        &errs,
        [(
            "binds[0].listeners[0].routes[0].policies.a2a",
            "applies to `host` backends",
        )],
    );
}

#[test]
fn route_groups_become_the_parents_routes_and_errors_name_the_delegation() {
    let config = load_str(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - name: parent\n      matches: [{path: {pathPrefix: /team1}, method: GET}]\n      policies: {timeout: {requestTimeout: 5s}, requestHeaderModifier: {set: {x-from: parent}}}\n      backends: [{routeGroup: team1}]\nrouteGroups:\n- name: team1\n  routes:\n  - name: foo\n    matches: [{path: {pathPrefix: /team1/foo}}]\n    policies: {requestHeaderModifier: {set: {x-from: child}}}\n    backends: [{host: \"127.0.0.1:8080\"}]\n",
        "f",
        &env(),
    )
    .unwrap();
    let routes = &config.binds[0].listeners[0].routes;
    let names: Vec<_> = routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["foo", "parent"]);
    let foo = &routes[0];
    assert_eq!(
        foo.matches[0].path,
        PathMatch::PathPrefix("/team1/foo".into())
    );
    assert_eq!(
        foo.matches[0].method.as_deref(),
        Some("GET"),
        "the parent's conditions hold"
    );
    assert!(
        foo.policies.timeout.is_some(),
        "the parent's policies apply"
    );
    let modifier = foo.policies.request_header_modifier.as_ref().unwrap();
    assert_eq!(
        modifier.set[0].1.expose(),
        "child",
        "the child's win, per policy"
    );
    let parent = &routes[1];
    assert!(parent.backends.is_empty());
    assert_eq!(
        parent.policies.direct_response.as_ref().unwrap().status,
        404
    );

    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - matches: [{path: {pathPrefix: /a}}]\n      backends: [{routeGroup: missing}]\n    - matches: [{path: {pathPrefix: /b}}]\n      backends: [{routeGroup: loop}]\n    - matches: [{path: {pathPrefix: /c}}]\n      backends: [{routeGroup: elsewhere}]\n    - backends: [{routeGroup: loop}, {host: \"127.0.0.1:1\"}]\nrouteGroups:\n- name: loop\n  routes:\n  - matches: [{path: {pathPrefix: /b/x}}]\n    backends: [{routeGroup: loop}]\n- name: elsewhere\n  routes:\n  - name: other\n    matches: [{path: {pathPrefix: /d}}]\n    backends: [{host: \"127.0.0.1:1\"}]\n",
    );
    let at = |field: &str| format!("binds[0].listeners[0].routes[{field}");
    assert_reported(
        &errs,
        [
            (
                at("0].backends[0].routeGroup"),
                "no route group is named `missing`",
            ),
            (
                "routeGroups[0].routes[0].backends[0].routeGroup".to_string(),
                "delegates back to itself",
            ),
            (
                at("2].backends[0].routeGroup"),
                "can never match under route `route2`",
            ),
            (at("3].backends"), "has no other backend"),
        ],
    );
}

#[test]
fn route_types_in_agentgateways_spelling_and_realtime_refused() {
    let config = load_str(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{ai: {name: p, provider: {openAI: {}}}}]\n      policies:\n        ai:\n          routes: {/v1/responses: responses, /v1/embeddings: embeddings, /v1/messages/count_tokens: anthropicTokenCount, '*': detect}\n",
        "t.yaml",
        &env(),
    )
    .unwrap();
    let routes = config.binds[0].listeners[0].routes[0]
        .policies
        .ai
        .as_ref()
        .and_then(|a| a.routes.clone())
        .unwrap();
    for (path, kind) in [
        ("/v1/responses", RouteType::Responses),
        ("/v1/embeddings", RouteType::Embeddings),
        ("/v1/messages/count_tokens", RouteType::AnthropicTokenCount),
        ("/v1/messages", RouteType::Detect),
    ] {
        assert_eq!(routes.classify(path), kind, "{path}");
    }
    let back = RouteTypes::try_from(crate::proto::v1::RouteTypes::from(&routes)).unwrap();
    assert_eq!(back, routes);
    let errs = errors(
        "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{ai: {name: p, provider: {openAI: {}}}}]\n      policies:\n        ai: {routes: {/v1/realtime: realtime}}\n",
    );
    assert_reported(
        &errs,
        [(
            "binds[0].listeners[0].routes[0].policies.ai.routes./v1/realtime",
            "`realtime` route type",
        )],
    );
}

#[test]
fn azure_providers_take_agentgateways_fields() {
    let provider = |azure: &str| {
        format!(
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: a, provider: {{azure: {azure}}}}}\n"
        )
    };
    let config = load_str(
        &provider("{resourceName: acme, resourceType: openAI}"),
        "f",
        &env(),
    )
    .unwrap();
    let BackendKind::Ai(ai) = &config.binds[0].listeners[0].routes[0].backends[0].kind else {
        panic!("an ai backend")
    };
    let azure = ai.groups[0][0].azure.as_ref().unwrap();
    assert_eq!(azure.api_version, "v1", "agentgateway's default");
    assert_eq!(azure.resource_type, AzureResourceType::OpenAi);
    let at = "binds[0].listeners[0].routes[0].backends[0].ai.provider.azure";
    assert_reported(
        &errors(&provider("{resourceName: 'a.b/c', resourceType: openAI}")),
        [(format!("{at}.resourceName"), "letters, digits and `-`")],
    );
    assert_reported(
        &errors(&provider("{resourceName: acme, resourceType: cloud}")),
        [(format!("{at}.resourceType"), "unknown value `cloud`")],
    );
}

#[test]
fn vertex_and_cloud_token_auth_take_agentgateways_fields() {
    let provider = |vertex: &str, auth: &str| {
        format!(
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: v, provider: {{vertex: {vertex}}}, policies: {{backendAuth: {auth}}}}}\n"
        )
    };
    let gcp = "{gcp: {type: accessToken, credential: {file: /etc/sa.json}}}";
    let config = load_str(
        &provider(
            "{projectId: acme-1, region: us-east5, model: claude-opus-4-6}",
            gcp,
        ),
        "f",
        &env(),
    )
    .unwrap();
    let BackendKind::Ai(ai) = &config.binds[0].listeners[0].routes[0].backends[0].kind else {
        panic!("an ai backend")
    };
    let p = &ai.groups[0][0];
    assert_eq!(p.provider, Provider::Vertex);
    assert_eq!(
        p.vertex.as_ref().unwrap().region.as_deref(),
        Some("us-east5")
    );
    assert_eq!(
        p.backend_auth,
        Some(BackendAuth::Gcp(GcpAuth {
            credential_file: Some("/etc/sa.json".into())
        }))
    );
    assert_eq!(
        config.referenced_files(),
        [(
            "binds[0].listeners[0].routes[0].backends[0].ai.groups[0].providers[0].policies.backendAuth.gcp.credential.file".to_string(),
            std::path::PathBuf::from("/etc/sa.json")
        )]
    );
    let entra = "{azure: {explicitConfig: {clientSecret: {tenant_id: t-1, client_id: c-1, client_secret: $AZ_SECRET}}}}";
    let env = HashMap::from([("AZ_SECRET".to_string(), "s3cret".to_string())]);
    let config = load_str(&provider("{projectId: p}", entra), "f", &env).unwrap();
    let BackendKind::Ai(ai) = &config.binds[0].listeners[0].routes[0].backends[0].kind else {
        panic!("an ai backend")
    };
    let Some(BackendAuth::Azure(AzureAuth::ClientSecret { client_secret, .. })) =
        &ai.groups[0][0].backend_auth
    else {
        panic!("a client secret")
    };
    assert_eq!(client_secret.expose(), "s3cret");
    let shown = serde_json::to_string(&config).unwrap();
    assert!(
        !shown.contains("s3cret") && shown.contains("$AZ_SECRET"),
        "{shown}"
    );

    let workload = "{azure: {explicitConfig: {workloadIdentity: {}}}}";
    let config = load_str(&provider("{projectId: p}", workload), "f", &env).unwrap();
    let back = Config::try_from(crate::proto::v1::Config::from(&config)).unwrap();
    assert_eq!(back, config, "through the proto");
    let BackendKind::Ai(ai) = &back.binds[0].listeners[0].routes[0].backends[0].kind else {
        panic!("an ai backend")
    };
    assert_eq!(
        ai.groups[0][0].backend_auth,
        Some(BackendAuth::Azure(AzureAuth::WorkloadIdentity))
    );

    let at = "binds[0].listeners[0].routes[0].backends[0].ai";
    let auth = format!("{at}.policies.backendAuth");
    assert_reported(
        &errors(&provider("{projectId: 'a/b'}", gcp)),
        [(format!("{at}.provider.vertex.projectId"), "project id")],
    );
    assert_reported(
        &errors(&provider("{projectId: p}", "{gcp: {type: idToken}}")),
        [(format!("{auth}.gcp.type"), "`idToken` (OIDC ID tokens")],
    );
    assert_reported(
        &errors(&provider(
            "{projectId: p}",
            "{gcp: {credential: '{\"type\": 1}'}}",
        )),
        [(format!("{auth}.gcp.credential"), "use `credential.file`")],
    );
    assert_reported(
        &errors(&provider("{projectId: p}", "{azure: {implicit: {}}}")),
        [(format!("{auth}.azure.implicit"), "is not supported")],
    );
    assert_reported(
        &errors(&provider(
            "{projectId: p}",
            "{azure: {explicitConfig: {managedIdentity: {}}}}",
        )),
        [(
            format!("{auth}.azure.explicitConfig.managedIdentity"),
            "is not supported",
        )],
    );
    assert_reported(
        &errors(
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies: {backendAuth: {gcp: {}}}\n      backends: [{host: 'a:1'}]\n",
        ),
        [(
            "binds[0].listeners[0].routes[0].policies.backendAuth",
            "apply to `ai` backends only",
        )],
    );
}

#[test]
fn bedrock_providers_and_aws_auth_take_agentgateways_fields() {
    let provider = |bedrock: &str, auth: &str| {
        format!(
            "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: b, provider: {{bedrock: {bedrock}}}, backendAuth: {auth}}}\n"
        )
    };
    let config = load_str(
        &provider(
            "{region: eu-west-1, model: m, guardrailIdentifier: g, guardrailVersion: '1'}",
            "{aws: {}}",
        ),
        "f",
        &env(),
    )
    .unwrap();
    let BackendKind::Ai(ai) = &config.binds[0].listeners[0].routes[0].backends[0].kind else {
        panic!("an ai backend")
    };
    let p = &ai.groups[0][0];
    assert_eq!(p.provider, Provider::Bedrock);
    assert_eq!(p.bedrock.as_ref().unwrap().region, "eu-west-1");
    assert_eq!(
        p.backend_auth,
        Some(BackendAuth::Aws(AwsAuth {
            keys: None,
            region: None
        })),
        "`{{}}`: keys from the proxy's environment or profile file"
    );
    let at = "binds[0].listeners[0].routes[0].backends[0].ai";
    assert_reported(
        &errors(&provider("{region: 'us east'}", "{aws: {}}")),
        [(format!("{at}.provider.bedrock.region"), "AWS region")],
    );
    assert_reported(
        &errors(&provider(
            "{region: us-east-1, guardrailIdentifier: g}",
            "{aws: {}}",
        )),
        [(format!("{at}.provider.bedrock"), "go together")],
    );
    assert_reported(
        &errors(&provider("{region: us-east-1}", "{aws: {accessKeyId: A}}")),
        [(format!("{at}.backendAuth.aws"), "go together")],
    );
    assert_reported(
        &errors(&provider("{}", "{aws: {}}")),
        [(format!("{at}.provider.bedrock"), "missing field `region`")],
    );
    let openai = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - ai: {name: o, provider: {openAI: {}}, backendAuth: {aws: {}}}\n";
    assert_reported(&errors(openai), [(at, "bedrock providers only")]);
    let host = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies: {backendAuth: {aws: {}}}\n      backends: [{host: '127.0.0.1:1'}]\n";
    assert_reported(
        &errors(host),
        [(
            "binds[0].listeners[0].routes[0].policies.backendAuth.aws",
            "bedrock providers only",
        )],
    );
}
