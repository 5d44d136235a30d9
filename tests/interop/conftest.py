"""Fixtures: the fake LLM APIs and a real tollgate process in front of them."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

BIN_DIR = os.environ.get("TOLLGATE_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../target/debug"))
OPENAI_KEY = "sk-interop-openai"
ANTHROPIC_KEY = "sk-interop-anthropic"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def fakes():
    proc = subprocess.Popen(
        [os.path.join(BIN_DIR, "tollgate-fake-llm"), "--openai-key", OPENAI_KEY, "--anthropic-key", ANTHROPIC_KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    addrs = json.loads(proc.stdout.readline())
    yield addrs
    proc.stdin.close()
    proc.wait(timeout=10)


ROUTE = """
    - name: {name}
      matches: [{{path: {{pathPrefix: /{name}}}}}]
      policies:
        urlRewrite: {{path: {{prefix: ""}}}}
        backendAuth: {{key: "${env}"}}
      backends:
      - ai:
          name: {name}
          provider: {{{kind}: {{model: {model}}}}}
          hostOverride: "{addr}"
          routes: {{/v1/chat/completions: completions, /v1/messages: messages}}
"""


@pytest.fixture(scope="session")
def gateway(fakes):
    port = free_port()
    config = f"binds:\n- port: {port}\n  listeners:\n  - routes:" + ROUTE.format(
        name="openai", kind="openAI", model="gpt-4o-mini", addr=fakes["openai"], env="OPENAI_API_KEY"
    ) + ROUTE.format(
        name="anthropic", kind="anthropic", model="claude-3-5-haiku-latest", addr=fakes["anthropic"], env="ANTHROPIC_API_KEY"
    )
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "gateway.yaml")
    with open(path, "w") as f:
        f.write(config)
    ready = free_port()
    env = dict(os.environ, OPENAI_API_KEY=OPENAI_KEY, ANTHROPIC_API_KEY=ANTHROPIC_KEY)
    log = open(os.path.join(tmp, "proxy.log"), "w")
    proc = subprocess.Popen(
        [
            os.path.join(BIN_DIR, "tollgate"), "-f", path, "--listen-ip", "127.0.0.1",
            "--admin-addr", "off", "--stats-addr", "off", "--readiness-addr", f"127.0.0.1:{ready}",
        ],
        env=env,
        stderr=log,
    )
    deadline = time.time() + 15
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ready}/healthz/ready", timeout=1)
            break
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("tollgate did not become ready: " + open(log.name).read())
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)
