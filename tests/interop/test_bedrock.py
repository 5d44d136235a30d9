"""The official SDKs through the `bedrock` provider: OpenAI's chat completions and Responses
(plain and streamed) and Anthropic's messages (plain and streamed), translated to Bedrock's
Converse API, signed with SigV4, against a fake Bedrock that verifies the signature."""

import json
import os
import subprocess

import anthropic
import openai
import pytest

from conftest import BIN_DIR, free_port, run_tollgate

AWS_KEY_ID = "AKIDINTEROPTEST"
AWS_SECRET = "interop-secret/0123456789"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ANSWER = "Hello from Bedrock"


@pytest.fixture(scope="module")
def bedrock():
    proc = subprocess.Popen(
        [os.path.join(BIN_DIR, "tollgate-fake-llm"), "--aws-key-id", AWS_KEY_ID, "--aws-secret", AWS_SECRET],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    addrs = json.loads(proc.stdout.readline())
    yield addrs["bedrock"]
    proc.stdin.close()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(bedrock):
    port = free_port()
    config = f"""binds:
- port: {port}
  listeners:
  - routes:
    - policies:
        backendAuth: {{aws: {{accessKeyId: $AWS_KEY_ID, secretAccessKey: $AWS_SECRET}}}}
        ai:
          routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/responses: responses}}
      backends:
      - ai:
          name: bedrock
          provider: {{bedrock: {{region: us-east-1, model: "{MODEL}"}}}}
          hostOverride: "{bedrock}"
"""
    with run_tollgate(config, env={"AWS_KEY_ID": AWS_KEY_ID, "AWS_SECRET": AWS_SECRET}):
        yield f"http://127.0.0.1:{port}"


def test_openai_chat_completions_plain_and_streamed(gateway):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="client-key")
    messages = [{"role": "user", "content": "Hello Bedrock"}]
    completion = client.chat.completions.create(model="any", messages=messages)
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 4
    chunks = list(client.chat.completions.create(model="any", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_anthropic_messages_plain_and_streamed(gateway):
    client = anthropic.Anthropic(base_url=gateway, api_key="client-key")
    messages = [{"role": "user", "content": "Hello Bedrock"}]
    message = client.messages.create(model="any", max_tokens=64, messages=messages)
    assert message.content[0].text == ANSWER
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 4
    with client.messages.stream(model="any", max_tokens=64, messages=messages) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ANSWER
    assert final.usage.output_tokens == 4
    assert final.stop_reason == "end_turn"


def test_openai_responses_plain_streamed_and_tools(gateway):
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="client-key", max_retries=0)
    resp = client.responses.create(model="any", instructions="be brief", input="Hello Bedrock")
    assert resp.status == "completed" and resp.output_text == ANSWER
    with client.responses.stream(model="any", input="Hello Bedrock") as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == ANSWER and final.output_text == ANSWER
    tools = [{"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    resp = client.responses.create(model="any", input="Weather?", tools=tools)
    call = resp.output[0]
    assert call.type == "function_call" and call.name == "weather" and call.arguments == '{"city":"Paris"}'
