"""Virtual keys: the official OpenAI SDK's `api_key` is a client key that the gateway checks
(`apiKey`) and drops, and the provider gets the operator's key (`backendAuth`)."""

import openai
import pytest

from conftest import OPENAI_KEY, free_port, run_tollgate

CLIENT_KEY = "tg-virtual-key-alice-51d0"


@pytest.fixture(scope="module")
def virtual(fakes):
    port = free_port()
    config = f"""binds:
- port: {port}
  listeners:
  - routes:
    - name: openai
      policies:
        apiKey:
          mode: strict
          keys:
          - key: $CLIENT_KEY
            metadata: {{user: alice}}
        backendAuth: {{key: $OPENAI_API_KEY}}
      backends:
      - ai:
          name: openai
          provider: {{openAI: {{model: gpt-4o-mini}}}}
          hostOverride: "{fakes['openai']}"
          routes: {{/v1/chat/completions: completions}}
"""
    with run_tollgate(config, env={"CLIENT_KEY": CLIENT_KEY, "OPENAI_API_KEY": OPENAI_KEY}) as log:
        yield f"http://127.0.0.1:{port}/v1", log


def ask(url, key):
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_the_client_key_is_replaced_by_the_provider_key(virtual):
    url, _ = virtual
    # The fake provider answers 401 to any key but the operator's.
    assert ask(url, CLIENT_KEY).choices[0].message.content == "openai says: hi"


def test_a_wrong_client_key_is_an_authentication_error(virtual):
    url, log = virtual
    # Not even the provider's own key is a client key.
    for key in ["tg-wrong-key", OPENAI_KEY]:
        with pytest.raises(openai.AuthenticationError) as refused:
            ask(url, key)
        assert refused.value.status_code == 401
        assert refused.value.response.text == "unauthorized: invalid API key"
    text = open(log).read()
    assert CLIENT_KEY not in text and OPENAI_KEY not in text
