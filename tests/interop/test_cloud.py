"""The official OpenAI SDK through Tollgate to Vertex AI (the fake), with a Google service
account whose key is generated here: Gemini models on Vertex's OpenAI-compatible endpoint and
Anthropic models on rawPredict, plain and streamed, one access token for all."""

import json
import os
import subprocess
import tempfile

import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import BIN_DIR, free_port, run_tollgate


@pytest.fixture(scope="module")
def vertex():
    tmp = tempfile.mkdtemp()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = os.path.join(tmp, "public.pem")
    with open(public, "wb") as f:
        f.write(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    proc = subprocess.Popen(
        [os.path.join(BIN_DIR, "tollgate-fake-llm"), "--google-public-key", public],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    addrs = json.loads(proc.stdout.readline())
    credentials = os.path.join(tmp, "service-account.json")
    with open(credentials, "w") as f:
        json.dump({
            "type": "service_account",
            "project_id": "tollgate-interop",
            "private_key_id": "interop-1",
            "private_key": key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()).decode(),
            "client_email": addrs["google_client_email"],
            "token_uri": addrs["google_token_uri"],
        }, f)
    port = free_port()
    config = f"""
binds:
- port: {port}
  listeners:
  - routes:
    - backends:
      - ai:
          name: vertex
          provider: {{vertex: {{projectId: tollgate-interop, region: europe-west4}}}}
          hostOverride: "{addrs['vertex']}"
          policies:
            backendAuth: {{gcp: {{credential: {{file: "{credentials}"}}}}}}
"""
    with run_tollgate(config) as log:
        yield f"http://127.0.0.1:{port}/v1", log
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.mark.parametrize("model", ["google/gemini-2.5-flash", "claude-sonnet-4-5-20250929"])
def test_chat_completions_on_vertex(vertex, model):
    base_url, log = vertex
    client = openai.OpenAI(base_url=base_url, api_key="client-key-is-replaced", max_retries=0)
    resp = client.chat.completions.create(model=model, max_tokens=32, messages=[{"role": "user", "content": "hello vertex"}])
    assert resp.choices[0].message.content.endswith("says: hello vertex")
    assert resp.usage.prompt_tokens > 0
    chunks = list(client.chat.completions.create(
        model=model, max_tokens=32, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hello stream"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("says: hello stream")
    assert chunks[-1].usage.completion_tokens > 0
    assert "PRIVATE KEY" not in open(log).read()


def test_vertex_errors_reach_the_sdk_as_openai_errors(vertex):
    base_url, _ = vertex
    client = openai.OpenAI(base_url=base_url, api_key="client-key-is-replaced", max_retries=0)
    # Vertex refuses a Gemini model without its publisher, in Google's array-wrapped error.
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    # Reshaped: the SDK reads an OpenAI error object, not Google's array.
    assert err.value.body["message"] == "Invalid model: the model must be of the form publisher/model"
