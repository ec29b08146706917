"""Chat completions through the official Python SDK: a plain reply and a
tool-call round trip, as an application would write them."""

from __future__ import annotations

import json
import re

import pytest

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
            },
            "required": ["city", "days"],
        },
    },
}


def emulated_reply(host: str, text: str) -> re.Pattern[str]:
    """The emulator's deterministic reply from `host`; the deployment name
    in parentheses is the host's own and is not checked here."""
    return re.compile(rf"Emulated reply from {re.escape(host)} \([^)]+\): {re.escape(text)}")


def test_chat_completion_returns_the_emulated_reply_usage_and_host(client, served_by):
    prompt = "Summarise the Q3 supplier contracts."
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}]
    )
    host = served_by(raw)
    assert raw.headers.get("x-request-id", "").startswith("req_")
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert emulated_reply(host, prompt).fullmatch(choice.message.content or "")

    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_tool_call_round_trip(client, served_by):
    messages: list = [{"role": "user", "content": "What's the weather in Lisbon for 3 days?"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls, "the model should have called the tool"
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    # Arguments follow the tool's JSON schema: strings "emulated", integers 1.
    assert json.loads(call.function.arguments) == {"city": "emulated", "days": 1}

    # As the SDK's docs do it: append the assistant message object itself
    # (the SDK serialises it, nulls included), then the tool's answer.
    messages.append(choice.message)
    result = '{"temp_c": 21, "sky": "clear"}'
    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, tools=[WEATHER_TOOL]
    )
    second = raw.parse()

    assert second.choices[0].finish_reason == "stop"
    assert not second.choices[0].message.tool_calls
    assert emulated_reply(served_by(raw), f"tool results: {result}").fullmatch(
        second.choices[0].message.content or ""
    )


def test_streamed_tool_call_accumulates_with_the_sdk_stream_helper(client):
    # `chat.completions.stream` is the SDK's own accumulator of streamed
    # deltas; tool-call argument fragments must join into valid JSON.
    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "emulated", "days": 1}


def test_reply_model_is_the_public_model_requested(client):
    # Enough requests that every host serves at least one with near certainty.
    for _ in range(24):
        plain = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        assert plain.model == "gpt-4o"
        for chunk in client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            assert chunk.model == "gpt-4o"
