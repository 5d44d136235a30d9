"""The official SDKs on the route types forwarded to the provider of their API: OpenAI's
Responses API (plain and streamed) and embeddings, Anthropic's token counting, and a token
limit on a Responses route."""

import anthropic
import openai
import pytest

from conftest import ANTHROPIC_KEY, OPENAI_KEY, free_port, run_tollgate

ROUTE = """
    - name: {name}
      matches: [{{path: {{pathPrefix: /{name}}}}}]
      policies:
        urlRewrite: {{path: {{prefix: ""}}}}
        backendAuth: {{key: "${env}"}}
        localRateLimit: [{{maxTokens: {tokens}, tokensPerFill: 1, fillInterval: 1h, type: tokens}}]
        ai:
          routes:
            /v1/responses: responses
            /v1/embeddings: embeddings
            /v1/messages/count_tokens: anthropicTokenCount
            /v1/messages: messages
      backends:
      - ai: {{name: {name}, provider: {{{kind}: {{}}}}, hostOverride: "{addr}"}}
"""


@pytest.fixture(scope="module")
def routes(fakes):
    port = free_port()
    config = f"binds:\n- port: {port}\n  listeners:\n  - routes:" + "".join(
        ROUTE.format(name=name, kind=kind, addr=fakes[fake], env=env, tokens=tokens)
        for name, kind, fake, env, tokens in [
            ("openai", "openAI", "openai", "OPENAI_API_KEY", 100000),
            ("limited", "openAI", "openai", "OPENAI_API_KEY", 12),
            ("anthropic", "anthropic", "anthropic", "ANTHROPIC_API_KEY", 100000),
        ]
    )
    with run_tollgate(config, env={"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}):
        yield f"http://127.0.0.1:{port}"


def openai_client(routes, name="openai"):
    return openai.OpenAI(base_url=f"{routes}/{name}/v1", api_key="client-key-is-replaced", max_retries=0)


def test_responses_create(routes):
    resp = openai_client(routes).responses.create(model="gpt-4.1", input="hello responses")
    assert resp.status == "completed"
    assert resp.output_text == "openai says: hello responses"
    assert resp.usage.input_tokens == 2
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens


def test_responses_stream(routes):
    stream = openai_client(routes).responses.create(
        model="gpt-4.1",
        input=[{"role": "user", "content": "stream these words"}],
        stream=True,
    )
    text, kinds, completed = "", [], None
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            completed = event.response
    assert kinds[0] == "response.created"
    assert text == "openai says: stream these words"
    assert completed is not None and completed.usage.output_tokens == 5


def test_embeddings_create(routes):
    resp = openai_client(routes).embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
    assert [d.embedding for d in resp.data] == [[0.0, 1.0, 0.5]] * 2
    assert resp.usage.prompt_tokens == 3


def test_anthropic_count_tokens(routes):
    client = anthropic.Anthropic(base_url=f"{routes}/anthropic", api_key="client-key-is-replaced")
    count = client.messages.count_tokens(
        model="claude-sonnet-4-5",
        system="be brief",
        messages=[{"role": "user", "content": "how many tokens here"}],
    )
    assert count.input_tokens == 6


def test_responses_token_limit(routes):
    client = openai_client(routes, "limited")
    # 3 words in, 5 out: 8 of the 12 tokens; the next answer spends the rest.
    client.responses.create(model="gpt-4.1", input="spend some tokens")
    client.responses.create(model="gpt-4.1", input="and more")
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-4.1", input="refused")
