"""The official SDKs on the route types: OpenAI's Responses API (plain and streamed) and
embeddings, Anthropic's token counting, a token limit on a Responses route, and the
Responses API translated for an Anthropic provider (plain, streamed, tools)."""

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


def test_responses_translated_for_anthropic(routes):
    client = openai_client(routes, "anthropic")
    resp = client.responses.create(model="gpt-4.1", instructions="be brief", input="hello claude")
    assert resp.status == "completed"
    assert resp.output_text == "anthropic says: hello claude"
    assert resp.model == "gpt-4.1-20241022"  # the Anthropic fake names its snapshot
    assert resp.usage.input_tokens == 4 and resp.usage.output_tokens == 4


def test_responses_stream_translated_for_anthropic(routes):
    client = openai_client(routes, "anthropic")
    # The SDK's stream helper rebuilds the response from the events: they must be coherent.
    with client.responses.stream(model="gpt-4.1", input="stream from claude") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "anthropic says: stream from claude"
    assert final.output_text == "anthropic says: stream from claude"
    assert final.usage.output_tokens == 5


def test_responses_tools_translated_for_anthropic(routes):
    client = openai_client(routes, "anthropic")
    tools = [{"type": "function", "name": "lookup", "description": "Look up a word",
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}]
    first = client.responses.create(model="gpt-4.1", input="look it up", tools=tools)
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [("lookup", '{"q":"x"}')]
    follow_up = [
        {"role": "user", "content": "look it up"},
        *[c.model_dump(exclude_none=True) for c in calls],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "a result"},
    ]
    second = client.responses.create(model="gpt-4.1", input=follow_up)
    assert second.output_text == "anthropic says: a result"
    with client.responses.stream(model="gpt-4.1", input="look it up", tools=tools) as stream:
        args = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    assert args == '{"q":"x"}'
    assert final.output[0].type == "function_call" and final.output[0].call_id == calls[0].call_id


def test_responses_state_refused_for_anthropic(routes):
    client = openai_client(routes, "anthropic")
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt-4.1", input="again", previous_response_id="resp_1")
    assert "`previous_response_id` cannot be translated" in refused.value.response.text
