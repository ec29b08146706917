"""Gateway errors as the official Python SDK raises them: the exception
class an application catches, the status, OpenAI's `code` and `param`, and
a message that never echoes the caller's key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import openai
import pytest

HI = [{"role": "user", "content": "hi"}]


def tampered(key: str) -> str:
    """A well-formed key that is not valid: the real one with its last
    character changed, so an echo of either would show in the message."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


@dataclass
class Case:
    call: Callable[[openai.OpenAI], object]
    error: type[openai.APIStatusError]
    status: int
    code: str
    param: str | None = None
    tamper_key: bool = False


CASES = {
    "temperature out of range": Case(
        lambda c: c.chat.completions.create(model="gpt-4o", messages=HI, temperature=5),
        openai.BadRequestError, 400, "invalid_request", "temperature",
    ),
    "wrong field type": Case(
        lambda c: c.chat.completions.create(model="gpt-4o", messages=HI, extra_body={"n": "two"}),
        openai.BadRequestError, 400, "invalid_request", "n",
    ),
    "bad key": Case(
        lambda c: c.chat.completions.create(model="gpt-4o", messages=HI),
        openai.AuthenticationError, 401, "invalid_api_key", tamper_key=True,
    ),
    "bad key, models": Case(
        lambda c: c.models.list(),
        openai.AuthenticationError, 401, "invalid_api_key", tamper_key=True,
    ),
    "unknown model": Case(
        lambda c: c.chat.completions.create(model="gpt-9-ultra", messages=HI),
        openai.NotFoundError, 404, "model_not_found", "model",
    ),
    "unknown model, streamed": Case(
        lambda c: c.chat.completions.create(model="gpt-9-ultra", messages=HI, stream=True),
        openai.NotFoundError, 404, "model_not_found", "model",
    ),
    "unknown embedding model": Case(
        lambda c: c.embeddings.create(model="text-embedding-9", input="x"),
        openai.NotFoundError, 404, "model_not_found", "model",
    ),
    "body over 8 MiB": Case(
        lambda c: c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x" * (9 * 1024 * 1024)}]
        ),
        openai.APIStatusError, 413, "request_too_large",
    ),
    "every host rate limiting": Case(
        lambda c: c.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi [[fault:status=429,retry_after=1]]"}],
        ),
        openai.RateLimitError, 429, "upstream_rate_limited",
    ),
    "every host failing": Case(
        lambda c: c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi [[fault:status=500]]"}]
        ),
        openai.InternalServerError, 503, "allowed_hosts_unavailable",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_error_reaches_the_sdk_as_its_exception(case: Case, client_for, key):
    real_key = key("api")
    sent_key = tampered(real_key) if case.tamper_key else real_key
    with pytest.raises(case.error) as caught:
        case.call(client_for(api_key=sent_key))
    e = caught.value

    assert e.status_code == case.status
    assert e.code == case.code
    assert e.param == case.param
    # The SDK hands over the inner `error` object of OpenAI's error shape.
    assert isinstance(e.body, dict)
    assert e.body["code"] == case.code
    assert e.body["message"] and isinstance(e.body["type"], str)
    assert e.response.headers.get("content-type", "").startswith("application/json")

    shown = " ".join([str(e), e.message, json.dumps(e.body)])
    for secret in {real_key, sent_key}:
        assert secret.removeprefix("tk-") not in shown
    if case.status == 429:
        assert e.response.headers.get("retry-after") == "1"


def test_a_contract_refusal_is_a_permission_error_naming_the_clause(client_for):
    # Under reading-openai (C4, from 2026-02-27) gcp-marketplace may not
    # sell frontier: the SDK raises PermissionDeniedError and the clause is
    # named in the message and the x-treaty-clauses header.
    client = client_for(product="frontier", tenant="acme", channel="gcp-marketplace")
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    err = info.value
    assert err.status_code == 403
    assert err.body["code"] == "contract_refused"
    assert "C4" in err.message
    assert err.response.headers["x-treaty-clauses"] == "C4"


def test_a_preferred_host_outside_the_contract_is_refused(client_for):
    # C1: stateless API calls run only on Azure; asking for Bedrock is
    # refused, never a way around the clause.
    client = client_for()
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(
            model="gpt-4o", messages=HI, extra_headers={"x-treaty-prefer-host": "bedrock-useast1"}
        )
    assert "C1" in info.value.response.headers["x-treaty-clauses"]
