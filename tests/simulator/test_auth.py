"""Authentication and wrong paths: the token modes, the JSON 401, the login redirect, the 404."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.simulator.conftest import MAR5, TOKEN, api_headers, fetch, origin_of, report, serve
from voiceapi_async import AuthenticationError, NotFoundError


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mode", "headers", "params"),
    [
        ("bearer", {"Authorization": f"Bearer {TOKEN}"}, {}),
        ("raw", {"Authorization": TOKEN}, {}),
        ("access_token", {}, {"access_token": TOKEN}),
        ("api_token", {}, {"api_token": TOKEN}),
    ],
)
async def test_every_documented_auth_mode_is_accepted(
    mode: str, headers: dict[str, str], params: dict[str, str]
) -> None:
    """Bearer, raw Authorization, access_token and api_token all authenticate."""
    async with serve() as (sim, session):
        reply = await report(
            session, sim, "calls", headers={"Accept": "application/json", **headers}, **params
        )
    assert reply.status == 200
    assert reply.json()["status"] == "OK"
    [observed] = sim.observed.requests
    assert observed.auth == mode
    assert TOKEN not in repr(observed)
    if mode in params:
        assert (mode, "[REDACTED]") in observed.params


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "credentials",
    [
        {"headers": {"Authorization": "Bearer wrong-token"}},
        {"headers": {"Authorization": "wrong-token"}},
        {"params": {"access_token": "wrong-token"}},
        {"headers": {"Authorization": "Bearer "}},
        {},
    ],
)
async def test_bad_token_with_accept_json_is_a_json_401(credentials: dict[str, Any]) -> None:
    """A wrong or missing token with Accept: application/json gets a JSON 401."""
    headers = {"Accept": "application/json", **credentials.get("headers", {})}
    async with serve() as (sim, session):
        reply = await fetch(
            session,
            sim.base_url + "voice/calls",
            params={"datetime[end_at]": MAR5, **credentials.get("params", {})},
            headers=headers,
        )
    assert reply.status == 401
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["status"] == "ERROR"
    assert body["code"] == 401
    assert body["message"]
    with pytest.raises(AuthenticationError):
        reply.page()
    assert sim.observed.requests[-1].status == 401


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-token"},
        {},
        {"Accept": "text/html, application/json"},
        {"Accept": "application/json;q=0.5, text/html"},
    ],
)
async def test_bad_token_without_accept_json_redirects_to_login(headers: dict[str, str]) -> None:
    """Unless JSON is the preferred Accept type, a bad token is a 302 to the login page."""
    async with serve() as (sim, session):
        url = sim.base_url + "voice/calls"
        redirect = await fetch(session, url, headers=headers, allow_redirects=False)
        login = await fetch(session, url, headers=headers)
    assert redirect.status == 302
    assert urlsplit(redirect.headers["Location"]).path == "/login"
    with pytest.raises(AuthenticationError):
        redirect.page()
    assert login.status == 200
    assert login.headers["Content-Type"].startswith("text/html")
    assert b"<form" in login.body
    with pytest.raises(AuthenticationError):
        login.page()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path", ["api/v2/voice/unknown", "api/v1/voice/calls", "api/v2/voice/calls/extra", ""]
)
async def test_unknown_paths_are_a_json_404(path: str) -> None:
    """Anything but the two reports, the login page and storage is a JSON 404."""
    async with serve() as (sim, session):
        reply = await fetch(session, f"{origin_of(sim)}/{path}", headers=api_headers())
    assert reply.status == 404
    body = reply.json()
    assert body["status"] == "ERROR"
    assert body["code"] == 404
    with pytest.raises(NotFoundError):
        reply.page()
