"""deploy/kubernetes: rendered with kustomize, validated offline against the Kubernetes schemas,
and checked against the binaries (every flag a manifest passes exists, the gateway config loads)."""

import copy
import os
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from conftest import BIN_DIR

ROOT = os.path.join(os.path.dirname(__file__), "../..")
KUBERNETES = os.path.join(ROOT, "deploy/kubernetes")
# The oldest Kubernetes the manifests target (the preStop `sleep` action is 1.30).
VERSION = "1.30"


def render(path):
    kustomize = shutil.which("kustomize")
    command = [kustomize, "build", path] if kustomize else ["kubectl", "kustomize", path]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_base_renders_and_validates_strictly():
    docs = render(os.path.join(KUBERNETES, "base"))
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert ("Deployment", "tollgate-cp") in kinds and ("Deployment", "tollgate-proxy") in kinds
    for doc in docs:
        kubernetes_validate.validate(doc, VERSION, strict=True)
    # The validator does fail: a misspelt field is refused.
    broken = copy.deepcopy(by_kind(docs, "Deployment", "tollgate-proxy"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def test_the_cert_manager_overlay_issues_the_secrets_the_base_mounts():
    docs = render(os.path.join(KUBERNETES, "overlays/cert-manager"))
    issued = {d["spec"]["secretName"] for d in docs if d["kind"] == "Certificate"}
    mounted = {
        v["secret"]["secretName"]
        for d in docs
        if d["kind"] == "Deployment"
        for v in d["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert {"tollgate-cp-tls", "tollgate-proxy-tls"} <= issued
    assert mounted - issued == {"tollgate-cp-admin"}
    proxy = by_kind(docs, "Certificate", "tollgate-proxy")["spec"]
    assert proxy["usages"] == ["client auth"] and proxy["dnsNames"] == ["default"]


def test_proxies_run_hardened_and_drain():
    docs = render(os.path.join(KUBERNETES, "base"))
    for name in ("tollgate-cp", "tollgate-proxy"):
        pod = by_kind(docs, "Deployment", name)["spec"]["template"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        for container in pod["spec"]["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    proxy = by_kind(docs, "Deployment", "tollgate-proxy")["spec"]["template"]["spec"]
    container = proxy["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz/ready"
    assert proxy["terminationGracePeriodSeconds"] > container["lifecycle"]["preStop"]["sleep"]["seconds"]
    # The gateway ConfigMap keeps its name, so edits reach the control plane as a symlink swap.
    assert by_kind(docs, "ConfigMap", "tollgate-gateways")


def flags_of(binary):
    help_text = subprocess.run([os.path.join(BIN_DIR, binary), "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"--[a-z][a-z0-9-]*", help_text))


def test_every_flag_in_the_manifests_exists_and_the_gateway_config_loads(tmp_path):
    docs = render(os.path.join(KUBERNETES, "base"))
    for name in ("tollgate-cp", "tollgate-proxy"):
        command = by_kind(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["command"]
        known = flags_of(command[0])
        for arg in command[1:]:
            flag = arg.split("=")[0]
            assert flag in known, f"{name}: {command[0]} has no flag {flag}"
    gateways = by_kind(docs, "ConfigMap", "tollgate-gateways")["data"]
    for file, text in gateways.items():
        (tmp_path / file).write_text(text)
    result = subprocess.run(
        [os.path.join(BIN_DIR, "tollgate-cp"), "check", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
