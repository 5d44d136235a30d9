"""deploy/docker-compose.yml against the Compose specification (no Docker daemon here)."""

import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "../..")


def test_compose_file_matches_the_compose_spec():
    checker = os.path.join(os.path.dirname(sys.executable), "check-jsonschema")
    compose = os.path.join(ROOT, "deploy/docker-compose.yml")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", compose], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_the_validated_configs():
    text = open(os.path.join(ROOT, "deploy/docker-compose.yml")).read()
    assert "./configs:/etc/tollgate/gateways" in text
    assert text.count('"--control-plane", "https://control-plane:15010"') == 2


def _flags(entrypoint):
    return {a: b for a, b in zip(entrypoint, entrypoint[1:]) if a.startswith("--")}


def test_compose_runs_the_config_stream_over_mutual_tls():
    services = _compose()["services"]
    certs = services["certs"]["entrypoint"]
    assert certs[:2] == ["tollgate-cp", "certs"]
    issued = {certs[i + 1] for i, a in enumerate(certs) if a == "--proxy"}
    cp = _flags(services["control-plane"]["entrypoint"])
    assert cp["--client-ca"] == "/certs/ca.crt" and cp["--tls-cert"] == "/certs/tls.crt"
    assert services["control-plane"]["depends_on"]["certs"]["condition"] == "service_completed_successfully"
    for name, service in services.items():
        assert "--insecure" not in service.get("entrypoint", []), name
        assert "--insecure-control-plane" not in service.get("entrypoint", []), name
        mounts = [v for v in service.get("volumes", []) if isinstance(v, dict) and v["source"] == "certs"]
        for mount in mounts:
            # Nothing but the certs step sees the CA's key: every reader mounts its own directory.
            assert mount["read_only"] and mount["volume"]["subpath"] in ("control-plane", name), name
        if "--node-id" in service.get("entrypoint", []):
            flags = _flags(service["entrypoint"])
            assert f"{flags['--node-id']}={flags['--gateway']}" in issued, name
            assert [m["volume"]["subpath"] for m in mounts] == [flags["--node-id"]]
            assert flags["--control-plane-cert"] == "/certs/tls.crt"


def _compose():
    import yaml

    with open(os.path.join(ROOT, "deploy/docker-compose.yml")) as f:
        return yaml.safe_load(f)


def test_compose_runs_the_observability_stack():
    services = _compose()["services"]
    for name in ("control-plane", "proxy-a", "proxy-b", "prometheus", "grafana", "jaeger"):
        assert name in services, name
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    assert "prometheus" in services["grafana"]["depends_on"]
    assert "COLLECTOR_OTLP_ENABLED=true" in services["jaeger"]["environment"]
    # OTLP stays inside the compose network; only the Jaeger UI is published (on localhost).
    assert not any("4317" in str(p) for p in services["jaeger"].get("ports", []))
    for name in ("prometheus", "grafana", "jaeger"):
        for port in services[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_every_mounted_observability_file_exists():
    import yaml

    deploy = os.path.join(ROOT, "deploy")
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                assert volume["source"] in _compose()["volumes"], (name, volume)
                continue
            source = volume.split(":")[0]
            if source.startswith("."):
                assert os.path.exists(os.path.join(deploy, source)), (name, volume)
    prometheus = yaml.safe_load(open(os.path.join(deploy, "prometheus/prometheus.yml")))
    for rule_file in prometheus["rule_files"]:
        assert os.path.isfile(os.path.join(deploy, "prometheus", rule_file)), rule_file
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in prometheus["scrape_configs"]
    }
    assert targets == {
        "tollgate": ["proxy-a:15020", "proxy-b:15020"],
        "tollgate-cp": ["control-plane:15011"],
    }
    provider = yaml.safe_load(open(os.path.join(deploy, "grafana/provisioning/dashboards/tollgate.yml")))
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load(open(os.path.join(deploy, "grafana/provisioning/datasources/prometheus.yml")))
    assert datasource["datasources"][0]["uid"] == "prometheus"
    with open(os.path.join(deploy, "grafana/dashboards/tollgate.json")) as f:
        dashboard = json.load(f)
    assert dashboard["uid"] == "tollgate"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["gridPos"] and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and "$" not in target["expr"], (panel["title"], target)
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}
