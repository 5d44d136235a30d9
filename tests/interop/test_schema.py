"""The committed JSON Schema (`schema/config.json`, what editors validate files with) accepts
every config the repository ships and agentgateway's examples Tollgate loads, and refuses
what `tollgate check` refuses as a typo or a wrong type."""

import json
import os
import pathlib

import jsonschema
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schema" / "config.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def seed_dir() -> pathlib.Path:
    env = os.environ.get("TOLLGATE_SEED_DIR")
    return pathlib.Path(env) if env else ROOT.parent / "shared" / "seed" / "configs"


def configs() -> list[pathlib.Path]:
    dirs = [ROOT / "examples", ROOT / "deploy", ROOT / "tests" / "fixtures" / "agentgateway", seed_dir()]
    files = [f for d in dirs for f in sorted(d.rglob("*.yaml"))]
    # As `tollgate check`'s test (check.rs): Kubernetes manifests other than their gateway
    # configs are not configs, and the walkthrough's Anthropic file is broken on purpose.
    return [
        f
        for f in files
        if not ("kubernetes" in f.parts and f.parent.name != "gateways")
        and not f.name.startswith("local-rate-limit-anthropic")
    ]


def test_the_schema_is_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", configs(), ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_config_matches_the_schema(path: pathlib.Path):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors, errors


@pytest.mark.parametrize(
    "config, wrong",
    [
        ({"binds": [{"port": 3000, "listeners": [{"routes": [{"policies": {"retri": {}}}]}]}]}, "retri"),
        ({"binds": [{"port": "three thousand"}]}, "three thousand"),
        ({"config": {"tracing": {"otlpEndpoint": "x", "nope": 1}}}, "nope"),
    ],
)
def test_typos_and_wrong_types_are_refused(config, wrong):
    messages = [e.message for e in VALIDATOR.iter_errors(config)]
    assert any(wrong in m for m in messages), messages
