"""The official OpenAI and Anthropic SDKs as clients of the gateway, to each provider kind."""

import anthropic
import openai
import pytest

PROVIDERS = ["openai", "anthropic"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_sdk_chat(gateway, provider):
    client = openai.OpenAI(base_url=f"{gateway}/{provider}/v1", api_key="client-key-is-replaced")
    resp = client.chat.completions.create(
        model="ignored-by-config",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello gateway"}],
    )
    assert resp.choices[0].message.content == f"{provider} says: hello gateway"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_sdk_stream(gateway, provider):
    client = openai.OpenAI(base_url=f"{gateway}/{provider}/v1", api_key="k")
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "stream this"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == f"{provider} says: stream this"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 4


@pytest.mark.parametrize("provider", PROVIDERS)
def test_openai_sdk_tool_calls(gateway, provider):
    client = openai.OpenAI(base_url=f"{gateway}/{provider}/v1", api_key="k")
    resp = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "look it up"}],
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
    )
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup"
    assert call.function.arguments == '{"q":"x"}'
    assert resp.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_sdk_messages(gateway, provider):
    client = anthropic.Anthropic(base_url=f"{gateway}/{provider}", api_key="client-key-is-replaced")
    msg = client.messages.create(
        model="ignored-by-config",
        max_tokens=200,
        system="be brief",
        messages=[{"role": "user", "content": "hello gateway"}],
    )
    assert msg.content[0].text == f"{provider} says: hello gateway"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 4


@pytest.mark.parametrize("provider", PROVIDERS)
def test_anthropic_sdk_stream(gateway, provider):
    client = anthropic.Anthropic(base_url=f"{gateway}/{provider}", api_key="k")
    with client.messages.stream(
        model="m", max_tokens=100, messages=[{"role": "user", "content": "stream this"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"{provider} says: stream this"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4


def test_anthropic_sdk_sees_provider_errors(gateway):
    client = anthropic.Anthropic(base_url=f"{gateway}/openai", api_key="k", max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="m", max_tokens=10, messages="not a list")
