//! `tollgate check` and `tollgate-cp check` on every config the project ships or users bring.

use std::path::Path;
use std::process::Command;

use tollgate_tests::{binary, seed_configs, workspace_root};

fn check(file: &Path) -> std::process::Output {
    Command::new(binary("tollgate"))
        .args(["check", "-f"])
        .arg(file)
        .env("OPENAI_API_KEY", "sk-test-openai")
        .env("ANTHROPIC_API_KEY", "sk-test-anthropic")
        .env("GEMINI_API_KEY", "test-gemini")
        .output()
        .unwrap()
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.components().any(|c| c.as_os_str() == "kubernetes")
            && !p.parent().is_some_and(|d| d.ends_with("gateways"))
        {
            // Kubernetes manifests; their gateway configs are checked.
        } else if p.extension().is_some_and(|x| x == "yaml")
            && !p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("prometheus")
        {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn every_seed_config_is_judged_correctly() {
    let files = yaml_files(&seed_configs());
    assert!(
        files.len() >= 10,
        "seed configs not found in {}",
        seed_configs().display()
    );
    for file in files {
        let out = check(&file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("local-rate-limit-anthropic") {
            assert!(!out.status.success(), "{name} must be rejected");
            let first = stderr.lines().next().unwrap_or("");
            assert!(
                first.starts_with(&format!("{}:19:", file.display())),
                "{name}: {stderr}"
            );
            assert!(first.contains("invalid YAML"), "{name}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        } else {
            assert!(out.status.success(), "{name} must be valid: {stderr}");
        }
    }
}

#[test]
fn every_repo_config_is_valid() {
    let root = workspace_root();
    // `tests/fixtures/agentgateway`: agentgateway's examples, which must load unchanged.
    let files: Vec<_> = ["examples", "deploy", "tests/fixtures/agentgateway"]
        .iter()
        .flat_map(|d| yaml_files(&root.join(d)))
        .collect();
    assert!(!files.is_empty(), "examples/ has configs");
    for file in files {
        let out = check(&file);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn all_errors_are_printed_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends: [{host: nope}]\n      policies:\n        timeout: {requestTimeout: soon}\n        retri: {}\n",
    )
    .unwrap();
    let out = check(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    assert!(stderr.contains(&format!("{f}:5:")), "{stderr}");
    assert!(stderr.contains(&format!("{f}:7:")), "{stderr}");
    assert!(stderr.contains(&format!("{f}:8:9: binds[0].listeners[0].routes[0].policies.retri: unknown field `retri` (did you mean `retry`?)")), "{stderr}");
    assert!(stderr.contains("3 error(s)"), "{stderr}");
}

#[test]
fn telemetry_settings_are_checked_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("obs.yaml");
    std::fs::write(
        &file,
        "config:\n  tracing:\n    otlpEndpoint: http://127.0.0.1:4317\n    otlpProtocol: udp\n    fields:\n      add: {model: 'llm.request_model +'}\n  metrics:\n    fields:\n      add: {gen_ai.system: llm.provider, route: '\"x\"'}\n      remove: [route]\n  logging:\n    filter: 'response.code >='\n    level: loud\nbinds: []\n",
    )
    .unwrap();
    let out = check(&file);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    for want in [
        format!(
            "{f}:4:19: config.tracing.otlpProtocol: unknown protocol `udp`; expected grpc or http"
        ),
        format!("{f}:6:"),
        "config.tracing.fields.add.model: invalid CEL expression `llm.request_model +`".to_string(),
        "`gen_ai.system` is not a Prometheus label name".to_string(),
        "`route` is a standard label of the request metrics".to_string(),
        "config.metrics.fields.remove: labels cannot be removed".to_string(),
        "config.logging.filter: invalid CEL expression".to_string(),
        "config.logging.level: unknown level `loud`".to_string(),
        "7 error(s)".to_string(),
    ] {
        assert!(stderr.contains(&want), "{want}\n{stderr}");
    }
}

#[test]
fn unset_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env.yaml");
    std::fs::write(&file, "binds:\n- port: 3000\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1'}]\n      policies: {backendAuth: {key: $TOLLGATE_TEST_UNSET}}\n").unwrap();
    let out = check(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`TOLLGATE_TEST_UNSET` is not set"),
        "{stderr}"
    );
    assert!(stderr.contains("policies.backendAuth.key"), "{stderr}");
}

#[test]
fn control_plane_check_validates_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        super::simple_config(3000, "127.0.0.1:1"),
    )
    .unwrap();
    let ok = Command::new(binary("tollgate-cp"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::write(
        dir.path().join("b.yaml"),
        "binds: [{port: 1, listeners: [{routes: [{backends: [{host: x}]}]}]}]\n",
    )
    .unwrap();
    let bad = Command::new(binary("tollgate-cp"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("b.yaml:1:"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// A config path that never ends (a device) is refused at the size bound, not read into
/// memory until the process dies.
#[test]
fn an_endless_config_file_is_refused_at_its_size_bound() {
    let out = check(Path::new("/dev/zero"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read the file: larger than the limit of 64.0 MiB"),
        "{stderr}"
    );
}
