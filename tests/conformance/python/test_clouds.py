"""One application, every cloud: the same tool-call round trip and the same
streamed answer through the official SDK, whichever host the contract lets
the request run on. Each host speaks its own wire format to Treaty (Azure
OpenAI, AWS Bedrock Converse with SigV4 and the binary event stream, Google
Gemini, an OpenAI-compatible vLLM); the client sees none of it.

acme's `chat` product sold through gcp-marketplace is a non-API product
that clause C5 lets run on any host, so `x-treaty-prefer-host` may pick
each of them. (The shipped scenario has no Anthropic host; the gateway's
Rust test `tests/clouds.rs` puts Anthropic through the same checks.)
"""

from __future__ import annotations

import json

import pytest

HOSTS = ["azure-eastus", "bedrock-useast1", "gemini-uscentral1", "onprem-vllm"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}


@pytest.fixture
def on_cloud(client_for):
    client = client_for("chat", tenant="acme", channel="gcp-marketplace")

    def pinned(host: str):
        return client.with_options(default_headers={"x-treaty-prefer-host": host})

    return pinned


@pytest.mark.parametrize("host", HOSTS)
def test_tool_call_round_trip_is_the_same_on_every_cloud(on_cloud, served_by, host):
    client = on_cloud(host)
    messages: list = [{"role": "user", "content": "What's the weather in Lisbon for 3 days?"}]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, tools=[WEATHER_TOOL]
    )
    assert served_by(raw) == host
    first = raw.parse()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "emulated", "days": 1}
    assert call.id

    messages.append(choice.message)
    result = '{"temp_c": 21, "sky": "clear"}'
    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, tools=[WEATHER_TOOL]
    )
    assert served_by(raw) == host
    second = raw.parse()
    assert second.model == "gpt-4o"
    assert second.choices[0].finish_reason == "stop"
    assert not second.choices[0].message.tool_calls
    # The emulated model quotes the tool result it was given; Bedrock and
    # Gemini carry a JSON result as JSON (so its spacing may change).
    answer = second.choices[0].message.content or ""
    quoted = answer.split("tool results: ", 1)[1]
    assert json.loads(quoted) == json.loads(result)
    assert second.usage.total_tokens == second.usage.prompt_tokens + second.usage.completion_tokens


@pytest.mark.parametrize("host", HOSTS)
def test_streamed_answer_is_the_same_on_every_cloud(on_cloud, host):
    client = on_cloud(host)
    prompt = "Count from one to five, with ünïcode."
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": prompt}],
        stream_options={"include_usage": True},
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 1, "the answer arrives in pieces"
    text = final.choices[0].message.content or ""
    assert "".join(deltas) == text
    assert text.startswith(f"Emulated reply from {host} (")
    assert text.endswith(prompt)
    assert final.choices[0].finish_reason == "stop"
    assert final.model == "gpt-4o"
    assert final.usage is not None and final.usage.completion_tokens > 0


@pytest.mark.parametrize("host", HOSTS)
def test_streamed_tool_call_is_the_same_on_every_cloud(on_cloud, host):
    client = on_cloud(host)
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "emulated", "days": 1}
