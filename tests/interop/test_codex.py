"""OpenAI's Codex CLI (`codex exec`, which speaks only the Responses API) through a `responses`
route: as is to an OpenAI provider, and translated for an Anthropic one, where the model's tool
call makes Codex run a command and send its output back."""

import json
import os
import subprocess
import tempfile

import pytest

from conftest import ANTHROPIC_KEY, OPENAI_KEY, free_port, run_tollgate

CODEX = os.environ.get("TOLLGATE_CODEX", os.path.expanduser("~/.cache/tollgate-codex/node_modules/.bin/codex"))

ROUTE = """
    - name: {name}
      matches: [{{path: {{pathPrefix: /{name}}}}}]
      policies:
        urlRewrite: {{path: {{prefix: ""}}}}
        backendAuth: {{key: "{key}"}}
        ai: {{routes: {{/v1/responses: responses, /v1/models: models}}}}
      backends:
      - ai: {{name: {name}, provider: {{{kind}: {{model: {model}}}}}, hostOverride: "{addr}"}}
"""


@pytest.fixture(scope="module")
def gateway(fakes):
    port = free_port()
    config = f"binds:\n- port: {port}\n  listeners:\n  - routes:" + "".join(
        ROUTE.format(name=name, kind=kind, model=model, key=key, addr=fakes[name])
        for name, kind, model, key in [
            ("openai", "openAI", "gpt-5-codex", OPENAI_KEY),
            ("anthropic", "anthropic", "claude-sonnet-4-5", ANTHROPIC_KEY),
        ]
    )
    with run_tollgate(config):
        yield f"http://127.0.0.1:{port}"


def codex_exec(gateway, route, prompt):
    """`codex exec --json` on a Tollgate route; returns its events."""
    home = tempfile.mkdtemp()
    with open(os.path.join(home, "config.toml"), "w") as f:
        f.write(
            'model_provider = "tollgate"\nmodel = "gpt-5-codex"\n'
            "[model_providers.tollgate]\n"
            f'name = "Tollgate"\nbase_url = "{gateway}/{route}/v1"\n'
            'env_key = "TOLLGATE_CLIENT_KEY"\nwire_api = "responses"\n'
            "request_max_retries = 0\nstream_max_retries = 0\n"
        )
    work = tempfile.mkdtemp()
    done = subprocess.run(
        [CODEX, "exec", "--json", "--skip-git-repo-check", "--cd", work, prompt],
        env=dict(os.environ, CODEX_HOME=home, TOLLGATE_CLIENT_KEY="client-key-is-replaced"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    return events


def items(events, kind):
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind]


def test_codex_answers_through_an_openai_responses_route(gateway):
    events = codex_exec(gateway, "openai", "say hello")
    assert [m["text"] for m in items(events, "agent_message")] == ["openai says: say hello"]
    usage = [e["usage"] for e in events if e["type"] == "turn.completed"][0]
    assert usage["output_tokens"] > 0


def test_codex_runs_a_tool_through_a_translated_anthropic_route(gateway):
    events = codex_exec(gateway, "anthropic", "run something")
    # The fake model calls Codex's first tool (its shell) with `x`, then answers the output.
    commands = items(events, "command_execution")
    assert len(commands) == 1 and commands[0]["command"].endswith("x"), commands
    messages = [m["text"] for m in items(events, "agent_message")]
    assert len(messages) == 1 and messages[0].startswith("anthropic says: "), messages
    assert "x: command not found" in messages[0] or "exit" in messages[0].lower(), messages
