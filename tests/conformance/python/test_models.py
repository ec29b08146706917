"""`/v1/models` through the official Python SDK: a key sees exactly the
models its product allows."""

from __future__ import annotations

import openai
import pytest

ALL_MODELS = {"gpt-4o", "gpt-4o-mini", "text-embedding-3-small"}


def test_api_key_lists_every_model(client_for):
    models = list(client_for("api").models.list())
    assert {m.id for m in models} == ALL_MODELS
    assert all(m.object == "model" for m in models)


def test_chat_key_does_not_list_the_embedding_model(client_for):
    ids = {m.id for m in client_for("chat", tenant="eurobank").models.list()}
    assert ids == {"gpt-4o", "gpt-4o-mini"}


def test_retrieve_a_model(client):
    model = client.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini"
    assert model.object == "model"


def test_retrieve_an_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-9-ultra")
    assert caught.value.code == "model_not_found"


def test_chat_key_cannot_retrieve_the_embedding_model(client_for):
    # Retrieval agrees with the listing: what is not listed does not exist.
    with pytest.raises(openai.NotFoundError) as caught:
        client_for("chat").models.retrieve("text-embedding-3-small")
    assert caught.value.code == "model_not_found"
