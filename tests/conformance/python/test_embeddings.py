"""Embeddings through the official Python SDK, which asks for base64 unless
told otherwise and decodes it itself."""

from __future__ import annotations

import array
import base64
import json
import math
import sys

import pytest

MODEL = "text-embedding-3-small"


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def sent(raw) -> dict:
    """The JSON body the SDK actually sent."""
    return json.loads(raw.http_request.content)


def test_default_base64_and_float_give_the_same_unit_vector(client, on_host, served_by):
    text = "KYC policy, section 4"
    default = client.embeddings.with_raw_response.create(model=MODEL, input=text)
    assert sent(default).get("encoding_format") == "base64", "the SDK should default to base64"
    host = served_by(default)

    floats = on_host(
        host,
        lambda: client.embeddings.with_raw_response.create(
            model=MODEL, input=text, encoding_format="float"
        ),
    )
    assert sent(floats)["encoding_format"] == "float"

    a = default.parse().data[0].embedding
    b = floats.parse().data[0].embedding
    assert len(a) == len(b) == 1536
    # Both are the same float32 values, once via base64 and once via JSON.
    assert a == pytest.approx(b, abs=1e-7)
    assert norm(a) == pytest.approx(1.0, abs=1e-5)


def from_base64(text: str) -> list[float]:
    """OpenAI's base64 encoding: the little-endian float32 bytes."""
    floats = array.array("f", base64.b64decode(text))
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tolist()


@pytest.mark.parametrize("encoding_format", [None, "base64", "float"])
def test_dimensions_shortens_the_vector(client, encoding_format):
    extra = {"encoding_format": encoding_format} if encoding_format else {}
    res = client.embeddings.create(model=MODEL, input="mission briefing", dimensions=64, **extra)
    vector = res.data[0].embedding
    # Asked for explicitly, base64 reaches the caller undecoded, as from OpenAI.
    if encoding_format == "base64":
        assert isinstance(vector, str)
        vector = from_base64(vector)
    assert len(vector) == 64
    assert norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_batch_input_gives_one_indexed_item_per_input(client, on_host, served_by):
    inputs = ["alpha", "beta", "gamma"]
    raw = client.embeddings.with_raw_response.create(model=MODEL, input=inputs)
    host = served_by(raw)
    res = raw.parse()

    assert res.object == "list"
    assert [d.index for d in res.data] == [0, 1, 2]
    assert all(d.object == "embedding" for d in res.data)
    assert res.usage.prompt_tokens > 0
    for d in res.data:
        assert norm(d.embedding) == pytest.approx(1.0, abs=1e-5)
    assert len({tuple(d.embedding) for d in res.data}) == 3, "different inputs, different vectors"

    # Item i is input i's vector: the batch is neither reordered nor mixed.
    for i, text in enumerate(inputs):
        alone = on_host(
            host, lambda text=text: client.embeddings.with_raw_response.create(model=MODEL, input=text)
        ).parse()
        assert alone.data[0].embedding == pytest.approx(res.data[i].embedding, abs=1e-7)


def test_same_input_embeds_to_the_same_vector_on_every_request(client):
    # A user who indexes documents with one request and queries with the
    # next needs both vectors in the same space.
    vectors = {
        tuple(client.embeddings.create(model=MODEL, input="same text", dimensions=8).data[0].embedding)
        for _ in range(12)
    }
    assert len(vectors) == 1
