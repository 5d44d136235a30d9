"""Fixtures: the fake LLM APIs and a real tollgate process in front of them."""

import contextlib
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


PATIENCE = float(os.environ.get("TOLLGATE_TEST_PATIENCE", "1"))


def wait_for(url, log, proc=None):
    """Polls `url` until it answers 2xx; fails with the process log after 15 s (x patience)."""
    deadline = time.time() + 15 * PATIENCE
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            if time.time() > deadline or (proc is not None and proc.poll() is not None):
                raise RuntimeError(f"{url} did not answer: " + open(log).read())
            time.sleep(0.05)


@contextlib.contextmanager
def run_tollgate(config, env=None, admin="off", cwd=None):
    """A real tollgate on `config` (YAML text), ready, run from `cwd`; yields the path of its log."""
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "gateway.yaml")
    with open(path, "w") as f:
        f.write(config)
    ready = free_port()
    log = open(os.path.join(tmp, "proxy.log"), "w")
    proc = subprocess.Popen(
        [
            os.path.join(BIN_DIR, "tollgate"), "-f", path, "--listen-ip", "127.0.0.1",
            "--admin-addr", admin, "--stats-addr", "off", "--readiness-addr", f"127.0.0.1:{ready}",
        ],
        env=dict(os.environ, **(env or {})),
        stderr=log,
        cwd=cwd,
    )
    try:
        wait_for(f"http://127.0.0.1:{ready}/healthz/ready", log.name, proc)
        yield log.name
    finally:
        proc.terminate()
        proc.wait(timeout=20)


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
    with run_tollgate(config, env={"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}):
        yield f"http://127.0.0.1:{port}"
