"""Streamed chat completions through the official Python SDK: the same
text as a plain reply, usage at the end, and chunks that reach the client
as the upstream sends them rather than all at once."""

from __future__ import annotations

import statistics
import time

# The emulator drips stream chunks this far apart when the directive is in
# the last user message.
DRIP_MS = 200
SLOW = f"[[fault:slow={DRIP_MS}]]"


def test_stream_concatenates_to_the_plain_reply_and_ends_with_usage(client, on_host, served_by):
    prompt = "Draft a plan for the onboarding agent."
    messages = [{"role": "user", "content": prompt}]
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    host = served_by(raw)
    assert raw.headers.get("content-type", "").startswith("text/event-stream")
    chunks = list(raw.parse())

    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]

    # include_usage: only the last chunk carries usage, with no choices.
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])

    # The same prompt on the same host, unstreamed: the same text and usage.
    plain = on_host(
        host,
        lambda: client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages),
    ).parse()
    assert streamed == plain.choices[0].message.content
    assert streamed.endswith(prompt)
    assert last.usage.prompt_tokens == plain.usage.prompt_tokens
    assert last.usage.completion_tokens == plain.usage.completion_tokens


def test_stream_chunks_arrive_one_by_one_not_buffered(client):
    words = "one two three four five six seven eight"
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"{words} {SLOW}"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    arrivals: list[tuple[float, str]] = []
    for chunk in stream:
        text = chunk.choices[0].delta.content if chunk.choices else None
        arrivals.append((time.monotonic() - started, text or ""))
    ended = time.monotonic() - started

    content = [(t, text) for t, text in arrivals if text]
    reply = "".join(text for _, text in content)
    assert reply.split()[:1] == ["Emulated"] and words in reply
    assert len(reply.split()) >= 10, reply

    # Drip-fed at 200 ms a chunk, the stream lasts seconds; a gateway that
    # buffered it would deliver the first word only at the end.
    first = content[0][0]
    assert first < ended - 1.0, f"first content chunk at {first:.2f}s, stream ended at {ended:.2f}s"
    # And each chunk arrives on its own, not coalesced with its neighbours.
    gaps = [b[0] - a[0] for a, b in zip(content, content[1:])]
    assert statistics.median(gaps) > DRIP_MS / 2000, f"gaps between chunks: {gaps}"
