"""deploy/docker-compose.yml against the Compose specification (no Docker daemon here)."""

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
    assert text.count("--control-plane") == 2
