"""Fixtures for the Python conformance suite: the running gateway, its demo
keys, and official `openai` clients pointed at it.

`run.sh` starts `treaty demo --serve` and exports TREATY_BASE_URL (ending
in `/v1`, as the SDK expects) and TREATY_KEYS_FILE. The tests never start or
stop the gateway themselves, so the same suite can be pointed at any Treaty
serving the Frontier example.

Routing currently spreads each request over every host serving the model,
and the emulator's replies name the host that served them. A test that
compares two replies therefore compares replies from the *same* host, via
`on_host`, instead of assuming a fixed placement.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import openai
import pytest

HOST_HEADER = "x-treaty-host"


@pytest.fixture(scope="session")
def base_url() -> str:
    url = os.environ.get("TREATY_BASE_URL")
    if not url:
        pytest.fail(
            "TREATY_BASE_URL is not set; run tests/conformance/run.sh, which starts the gateway",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def demo_keys() -> list[dict[str, str]]:
    path = os.environ.get("TREATY_KEYS_FILE")
    if not path:
        pytest.fail(
            "TREATY_KEYS_FILE is not set; run tests/conformance/run.sh, which writes it",
            pytrace=False,
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def key(demo_keys: list[dict[str, str]]) -> Callable[..., str]:
    """`key(product, tenant=..., channel=...)` → that demo key's secret."""

    def find(product: str = "api", tenant: str = "acme", channel: str = "direct") -> str:
        for k in demo_keys:
            if (k["tenant"], k["channel"], k["product"]) == (tenant, channel, product):
                return k["key"]
        raise LookupError(f"no demo key for {tenant}/{channel}/{product}")

    return find


@pytest.fixture(scope="session")
def client_for(base_url: str, key: Callable[..., str]):
    """`client_for(product, tenant=..., channel=..., api_key=...)` → an
    `openai.OpenAI` with retries off, so every error reaches the test as
    the gateway sent it."""
    made: list[openai.OpenAI] = []

    def make(
        product: str = "api",
        tenant: str = "acme",
        channel: str = "direct",
        api_key: str | None = None,
    ) -> openai.OpenAI:
        c = openai.OpenAI(
            base_url=base_url,
            api_key=api_key or key(product, tenant=tenant, channel=channel),
            max_retries=0,
            timeout=30.0,
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(client_for) -> openai.OpenAI:
    """A client holding acme's direct `api` key, which may use every model."""
    return client_for("api")


def _served_by(raw: Any) -> str:
    host = raw.headers.get(HOST_HEADER)
    assert host, f"the reply has no {HOST_HEADER} header"
    return host


@pytest.fixture(scope="session")
def served_by() -> Callable[[Any], str]:
    """`served_by(raw)` → the host named by a raw response's x-treaty-host."""
    return _served_by


@pytest.fixture(scope="session")
def on_host() -> Callable[..., Any]:
    """`on_host(host, call)` repeats `call` (which returns a raw response)
    until `host` serves it and returns that response. With six hosts and
    uniform routing a match takes about six tries; 100 makes a miss
    (5/6)^100 ≈ 1e-8 unlikely, and fails loudly if placement changes."""

    def run(host: str, call: Callable[[], Any], tries: int = 100) -> Any:
        seen = set()
        for _ in range(tries):
            raw = call()
            got = _served_by(raw)
            if got == host:
                return raw
            seen.add(got)
        pytest.fail(f"{tries} requests never reached {host} (served by: {sorted(seen)})")

    return run
