"""The deploy/ monitoring files against real processes: a control plane and two proxies under
traffic (LLM, MCP, rate limits, failures, a rejected config), scraped by a real Prometheus
(Debian's) that loads deploy/prometheus/alerts.yml; every PromQL expression of the Grafana
dashboards and the alert rules must return data. promtool checks and unit-tests the rules."""

import asyncio
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import pytest
import yaml
from mcp.client import Client

from conftest import BIN_DIR, OPENAI_KEY, PATIENCE, free_port, wait_for

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..")
DEPLOY = os.path.join(ROOT, "deploy")
RULES = os.path.join(DEPLOY, "prometheus/alerts.yml")
MCP_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mcp_server.py")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args):
    out = subprocess.run([PROMTOOL, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_promtool_checks_and_unit_tests_the_alert_rules():
    promtool("check", "rules", RULES)
    promtool("test", "rules", os.path.join(DEPLOY, "prometheus/alerts_test.yml"))
    promtool("check", "config", os.path.join(DEPLOY, "prometheus/prometheus.yml"))


def gateway_config(port, fake_openai, extra_route=""):
    python = json.dumps(sys.executable)
    return f"""binds:
- port: {port}
  listeners:
  - routes:
    - name: chat
      matches: [{{path: {{pathPrefix: /chat}}}}]
      policies:
        urlRewrite: {{path: {{prefix: ""}}}}
        backendAuth: {{key: "$OPENAI_API_KEY"}}
        localRateLimit: [{{maxTokens: 6, tokensPerFill: 1, fillInterval: 1h}}]
      backends:
      - ai: {{name: openai, provider: {{openAI: {{model: gpt-4o-mini}}}}, hostOverride: "{fake_openai}"}}
    - name: flaky
      matches: [{{path: {{pathPrefix: /flaky}}}}]
      policies: {{retry: {{attempts: 2, codes: [503]}}}}
      backends: [{{host: "127.0.0.1:9"}}]
    - name: tools
      matches: [{{path: {{pathPrefix: /tools}}}}]
      backends:
      - mcp:
          targets:
          - name: demo
            stdio: {{cmd: {python}, args: [{json.dumps(MCP_SERVER)}]}}
{extra_route}"""


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Procs:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, args, env=None):
        log = open(os.path.join(self.tmp, f"{name}.log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
        self.procs.append(p)
        return log.name

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=20)


def query(prom, expr):
    url = f"http://{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        answer = json.load(r)
    assert answer["status"] == "success", f"{expr}: {answer}"
    return answer["data"]["result"]


def eventually(what, check, seconds=30):
    deadline = time.time() + seconds * PATIENCE
    while True:
        last = check()
        if last:
            return last
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def dashboard_exprs():
    exprs = []
    for path in glob.glob(os.path.join(DEPLOY, "grafana/dashboards/*.json")):
        def walk(panels):
            for p in panels:
                walk(p.get("panels", []))
                for t in p.get("targets", []):
                    exprs.append((f"{os.path.basename(path)}: {p.get('title')}", t["expr"]))
        walk(json.load(open(path))["panels"])
    return exprs


def alert_exprs():
    rules = yaml.safe_load(open(RULES))
    return [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]


@pytest.fixture(scope="module")
def stack(fakes):
    tmp = tempfile.mkdtemp()
    procs = Procs(tmp)
    gateways = os.path.join(tmp, "gateways")
    os.mkdir(gateways)
    port = free_port()
    config_path = os.path.join(gateways, "default.yaml")
    with open(config_path, "w") as f:
        f.write(gateway_config(port, fakes["openai"]))
    grpc, cp_admin = free_port(), free_port()
    procs.start("cp", [os.path.join(BIN_DIR, "tollgate-cp"), "--config-dir", gateways,
                       "--listen", f"127.0.0.1:{grpc}", "--admin-addr", f"127.0.0.1:{cp_admin}",
                       "--insecure"])
    proxies = {}
    for name, ip in [("proxy-a", "127.0.0.2"), ("proxy-b", "127.0.0.3")]:
        stats, ready = free_port(), free_port()
        env = {"OPENAI_API_KEY": OPENAI_KEY}
        if name == "proxy-a":
            env["TOLLGATE_ONLY_ON_A"] = "present"
        log = procs.start(name, [
            os.path.join(BIN_DIR, "tollgate"), "--control-plane", f"http://127.0.0.1:{grpc}",
            "--gateway", "default", "--node-id", name, "--listen-ip", ip, "--admin-addr", "off",
            "--stats-addr", f"{ip}:{stats}", "--readiness-addr", f"{ip}:{ready}",
            "--insecure-control-plane", "--allow-env", "OPENAI_API_KEY,TOLLGATE_ONLY_ON_A",
            "--allow-command", sys.executable,
        ], env)
        wait_for(f"http://{ip}:{ready}/healthz/ready", log)
        proxies[name] = {"ip": ip, "stats": f"{ip}:{stats}", "url": f"http://{ip}:{port}"}
    prom = f"127.0.0.1:{free_port()}"
    prom_config = os.path.join(tmp, "prometheus.yml")
    with open(prom_config, "w") as f:
        yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [os.path.abspath(RULES)],
            "scrape_configs": [
                {"job_name": "tollgate", "static_configs": [{"targets": [p["stats"] for p in proxies.values()]}]},
                {"job_name": "tollgate-cp", "static_configs": [{"targets": [f"127.0.0.1:{cp_admin}"]}]},
            ],
        }, f)
    prom_log = procs.start("prometheus", [
        PROMETHEUS, f"--config.file={prom_config}", f"--web.listen-address={prom}",
        f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
    ])
    wait_for(f"http://{prom}/-/ready", prom_log)
    try:
        yield {"prom": prom, "proxies": proxies, "config": config_path, "fakes": fakes, "port": port}
    finally:
        procs.stop()


def drive_traffic(stack, chats):
    """`chats` chat completions per proxy (the route allows 6), 2 failing requests, 2 tool calls."""
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello prometheus"}]}
    statuses = [post(p["url"] + "/chat/v1/chat/completions", chat) for p in stack["proxies"].values() for _ in range(chats)]
    for p in stack["proxies"].values():
        for _ in range(2):
            assert post(p["url"] + "/flaky/x", {}) == 503

    async def tools():
        async with Client(stack["proxies"]["proxy-a"]["url"] + "/tools/mcp") as c:
            for i in range(2):
                await c.call_tool("add", {"a": i, "b": 1})

    asyncio.run(tools())
    return statuses


def test_every_dashboard_and_alert_expression_returns_data(stack):
    prom = stack["prom"]
    eventually("all targets up", lambda: len([r for r in query(prom, "up == 1")]) == 3)
    # Two waves: a counter's first sample is its value at the first scrape, so rate() and
    # increase() only see what happens after Prometheus has seen the series once.
    assert drive_traffic(stack, 4).count(200) == 8
    eventually("the first wave scraped", lambda: query(prom, 'agentgateway_requests_total{route="flaky"}'))
    eventually("tool calls scraped", lambda: query(prom, 'agentgateway_mcp_requests_total{method="tools/call"}'))
    time.sleep(2)
    statuses = drive_traffic(stack, 4)
    assert statuses.count(200) == 4 and statuses.count(429) == 4, statuses
    # An edit that proxy-b cannot apply (a variable only proxy-a has): it NACKs and stays out
    # of sync, which the sync alerts and panels must show.
    extra = "    - name: only-a\n      matches: [{path: {pathPrefix: /only-a}}]\n      policies: {backendAuth: {key: \"$TOLLGATE_ONLY_ON_A\"}}\n      backends: [{host: \"127.0.0.1:9\"}]\n"
    with open(stack["config"], "w") as f:
        f.write(gateway_config(stack["port"], stack["fakes"]["openai"], extra))
    eventually("proxy-b rejected the edit", lambda: query(prom, 'tollgate_cp_proxy_status{status="ERROR"} == 1'))
    time.sleep(3)  # a few more scrapes of the second wave

    exprs = dashboard_exprs() + alert_exprs()
    assert len(dashboard_exprs()) >= 10
    empty = [(where, expr) for where, expr in exprs if not query(prom, expr)]
    assert not empty, f"expressions without data: {empty}"

    # Prometheus evaluated the rules: the walkthrough's token alert fires at once.
    def token_alert():
        with urllib.request.urlopen(f"http://{prom}/api/v1/alerts", timeout=10) as r:
            alerts = json.load(r)["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "LLMTokenUsage" and a["state"] == "firing"]

    eventually("the LLMTokenUsage alert firing", token_alert)
