"""The Responses and Conversations APIs through the official Python SDK, as
an application would use them: plain and streamed responses, chaining,
a function-tool round trip, stored responses and their input items, and
conversations with their items. The demo instance is on Azure under
reading-openai, so acme's `api` key may hold state here."""

from __future__ import annotations

import json
import re

import openai
import pytest

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def emulated_reply(host: str, text: str) -> re.Pattern[str]:
    return re.compile(rf"Emulated reply from {re.escape(host)} \([^)]+\): {re.escape(text)}")


def test_create_returns_output_text_usage_and_the_serving_host(client, served_by):
    prompt = "Summarise the onboarding plan."
    raw = client.responses.with_raw_response.create(model="gpt-4o", input=prompt)
    host = served_by(raw)
    assert host.startswith("azure-"), "C1: the model step of an api key stays on Azure"
    response = raw.parse()

    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert emulated_reply(host, prompt).fullmatch(response.output_text)
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert response.usage is not None
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens

    stored = client.responses.retrieve(response.id)
    assert stored.model_dump() == response.model_dump()


def test_stream_helper_deltas_make_the_final_response(client):
    prompt = "Stream a short status update for the team."
    deltas: list[str] = []
    kinds: list[str] = []
    with client.responses.stream(model="gpt-4o", input=prompt) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()

    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    assert len(deltas) > 1, "the text arrives in several deltas"
    assert "".join(deltas) == final.output_text
    assert final.output_text.endswith(prompt)
    assert final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens > 0
    # Stored as the stream ended.
    stored = client.responses.retrieve(final.id)
    assert stored.output_text == final.output_text
    assert stored.status == "completed"


def test_previous_response_id_keeps_the_earlier_turns(client):
    first = client.responses.create(model="gpt-4o", input="My name is Ada.")
    second = client.responses.create(
        model="gpt-4o", input="I work on ledgers.", previous_response_id=first.id
    )
    third = client.responses.create(
        model="gpt-4o", input="[[recall]] Who am I?", previous_response_id=second.id
    )
    assert third.previous_response_id == second.id
    assert third.output_text.endswith("earlier user messages: My name is Ada. | I work on ledgers.")


def test_function_tool_round_trip(client):
    first = client.responses.create(
        model="gpt-4o", input="What's the weather in Lisbon?", tools=[WEATHER_TOOL]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    call = calls[0]
    assert call.name == "get_weather"
    assert call.call_id
    json.loads(call.arguments)

    result = json.dumps({"city": "Lisbon", "temperature_c": 24})
    second = client.responses.create(
        model="gpt-4o",
        previous_response_id=first.id,
        tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": result}],
    )
    assert second.status == "completed"
    assert f"tool results: {result}" in second.output_text


def test_delete_then_retrieve_raises_not_found(client):
    response = client.responses.create(model="gpt-4o", input="Forget me.")
    assert client.responses.delete(response.id) is None
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(response.id)
    assert caught.value.status_code == 404
    assert caught.value.code == "not_found"


def test_unknown_previous_response_is_a_not_found_naming_the_param(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-4o", input="hi", previous_response_id="resp_missing")
    assert caught.value.param == "previous_response_id"


def test_input_items_list_newest_first_and_pages(client):
    response = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
        ],
    )
    page = client.responses.input_items.list(response.id)
    texts = [item.content[0].text for item in page.data]
    assert texts == ["three", "two", "one"]
    assert page.has_more is False

    # limit=1 pages through all three with the SDK's auto-pagination.
    every = [item.id for item in client.responses.input_items.list(response.id, limit=1)]
    assert every == [item.id for item in page.data]
    ascending = client.responses.input_items.list(response.id, order="asc")
    assert [item.id for item in ascending.data] == list(reversed(every))


def test_conversation_lifecycle(client):
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}],
        metadata={"topic": "intro"},
    )
    assert conversation.object == "conversation"
    assert conversation.id.startswith("conv_")
    assert conversation.metadata == {"topic": "intro"}
    assert client.conversations.retrieve(conversation.id).id == conversation.id

    added = client.conversations.items.create(
        conversation.id,
        items=[{"type": "message", "role": "user", "content": "I live in Paris."}],
    )
    assert len(added.data) == 1

    turn = client.responses.create(
        model="gpt-4o", input="[[recall]] Who am I?", conversation=conversation.id
    )
    assert turn.output_text.endswith("earlier user messages: My name is Ada. | I live in Paris.")

    # Every item, in order: two added, then the turn's input and output.
    items = list(client.conversations.items.list(conversation.id, order="asc", limit=2))
    assert len(items) == 4
    assert [i.role for i in items] == ["user", "user", "user", "assistant"]
    assert items[2].content[0].text == "[[recall]] Who am I?"
    assert items[3].id == turn.output[0].id
    assert items[3].content[0].text == turn.output_text
    newest = client.conversations.items.list(conversation.id, limit=1)
    assert [i.id for i in newest.data] == [items[3].id], "newest first by default"
    assert newest.has_more is True

    one = client.conversations.items.retrieve(items[1].id, conversation_id=conversation.id)
    assert one.content[0].text == "I live in Paris."
    after = client.conversations.items.delete(items[1].id, conversation_id=conversation.id)
    assert after.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(items[1].id, conversation_id=conversation.id)
    assert len(list(client.conversations.items.list(conversation.id))) == 3

    updated = client.conversations.update(conversation.id, metadata={"topic": "moved"})
    assert updated.metadata == {"topic": "moved"}
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "moved"}

    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted is True and deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


def test_another_tenant_cannot_read_the_state(client, client_for):
    response = client.responses.create(model="gpt-4o", input="acme only")
    conversation = client.conversations.create()
    other = client_for("api", tenant="dod")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="gpt-4o", input="hi", previous_response_id=response.id)
    with pytest.raises(openai.NotFoundError):
        other.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="gpt-4o", input="hi", conversation=conversation.id)
