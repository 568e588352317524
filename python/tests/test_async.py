"""asyncio: tokenwarden.AsyncClient, httpx.AsyncClient with Auth, and the event loop."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

import tokenwarden


@pytest.mark.sim("--token-ttl", "1s", "--revoke-every", "100")
async def test_64_tasks_on_one_async_client(sim, auth):
    async with tokenwarden.AsyncClient(auth) as client:

        async def task(k: int):
            out = []
            for i in range(12):
                r = await client.get(f"/api/v2/users/user-{(k * 12 + i) % 999 + 1:06d}")
                out.append(r.status)
                await asyncio.sleep(0.02)
            return out

        started = time.monotonic()
        results = await asyncio.gather(*(task(k) for k in range(64)))
        assert time.monotonic() - started < 4.5
    assert {s for r in results for s in r} == {200}
    j = sim.journal()
    assert j["api_ok"] == 64 * 12, j
    assert j["max_concurrent_token_requests"] == 1, j
    assert j["api_expired_token"] == 0, j
    # Revocations healed (one refresh per revoked token, not one per task).
    assert j["api_revoked_token"] >= 7
    assert j["tokens_issued"] <= j["api_revoked_token"] + 8, j


@pytest.mark.sim("--token-latency", "1500ms")
async def test_the_event_loop_keeps_ticking_while_a_slow_token_request_runs(sim, auth):
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.create_task(ticker())
    started = time.monotonic()
    async with httpx.AsyncClient(auth=auth) as client:
        r = await client.get(f"{sim.base_url}/api/v2/users/user-000001")
    waited = time.monotonic() - started
    stop.set()
    await t
    assert r.status_code == 200
    assert waited >= 1.4
    # 10-ms ticks over 1.5 s: a blocked loop would have ticked once or twice.
    assert ticks >= 60, ticks
    assert sim.journal()["token_requests"] == 1


@pytest.mark.sim("--revoke-every", "20", "--token-ttl", "1s")
async def test_httpx_async_client_with_many_tasks(sim, auth):
    async with httpx.AsyncClient(auth=auth) as client:

        async def one(i: int) -> int:
            r = await client.get(f"{sim.base_url}/api/v2/users/user-{i % 999 + 1:06d}")
            return r.status_code

        statuses = []
        for _ in range(4):
            statuses += await asyncio.gather(*(one(i) for i in range(50)))
            await asyncio.sleep(0.3)
    assert set(statuses) == {200}
    j = sim.journal()
    assert j["max_concurrent_token_requests"] == 1
    assert j["api_ok"] == 200


@pytest.mark.sim("--users", "230", "--contacts", "130")
async def test_async_paginate(sim, auth):
    async with tokenwarden.AsyncClient(auth) as client:
        users = [u async for u in client.paginate("/api/v2/users", page_size=50)]
        contacts = [c async for c in client.paginate("/api/v2/externalcontacts/scan/contacts")]
    assert len(users) == 230 and len({u["id"] for u in users}) == 230
    assert len(contacts) == 130


@pytest.mark.sim()
async def test_async_errors_are_the_same_exceptions(sim):
    bad = tokenwarden.Auth(sim.token_url, "tw-client", "not-the-secret")
    with pytest.raises(tokenwarden.CredentialsError):
        await bad.token_async()
    async with tokenwarden.AsyncClient(bad) as client:
        with pytest.raises(tokenwarden.CredentialsError):
            await client.get("/api/v2/users/user-000001")
