"""tokenwarden.Client: requests, retries, pacing, every paging style."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import tokenwarden

INTERVAL = "2024-01-01T00:00:00Z/2024-01-08T00:00:00Z"


@pytest.mark.sim("--revoke-every", "7")
def test_get_post_and_request_return_status_headers_and_json(sim, auth):
    client = tokenwarden.Client(auth)
    r = client.get("/api/v2/users/user-000042")
    assert r.status == r.status_code == 200 and r.ok
    assert r.json()["id"] == "user-000042"
    assert r.headers["content-type"].startswith("application/json")
    r = client.post(
        "/api/v2/analytics/conversations/details/query",
        json={"interval": INTERVAL, "paging": {"pageSize": 5, "pageNumber": 1}},
        replay_safe=True,
    )
    assert len(r.json()["conversations"]) == 5
    r = client.request("GET", "/api/v2/users", params={"pageSize": 3, "pageNumber": 2})
    assert r.json()["pageNumber"] == 2 and len(r.json()["entities"]) == 3
    r = client.get("/api/v2/users/nobody")
    assert r.status == 404
    with pytest.raises(tokenwarden.HTTPStatusError):
        r.raise_for_status()
    for i in range(30):
        assert client.get(f"/api/v2/users/user-{i + 1:06d}").status == 200
    assert sim.journal()["api_revoked_token"] >= 4


@pytest.mark.sim("--rate-limit", "30", "--rate-limit-window", "1s")
def test_429_is_waited_out_and_the_rate_is_learned(sim, auth):
    client = tokenwarden.Client(auth)
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda i: client.get(f"/api/v2/users/user-{i + 1:06d}").status, range(75)))
    assert set(statuses) == {200}
    assert time.monotonic() - started >= 1.5  # 75 requests at 30 a second
    j = sim.journal()
    assert j["api_ok"] == 75
    # Paced from the announced limit: few 429s, not one per extra request.
    assert j["api_rate_limited"] <= 8, j


@pytest.mark.sim("--error-rate", "0.2")
def test_server_errors_are_retried(sim, auth):
    client = tokenwarden.Client(auth)
    for i in range(40):
        assert client.get(f"/api/v2/users/user-{i + 1:06d}").status == 200
    assert sim.journal()["api_server_error"] > 0


@pytest.mark.sim("--users", "1000", "--contacts", "310", "--conversations", "420", "--job-duration", "300ms")
def test_paginate_every_paging_style(sim, auth):
    client = tokenwarden.Client(auth)
    users = list(client.paginate("/api/v2/users", page_size=100))
    assert len(users) == 1000 and len({u["id"] for u in users}) == 1000
    contacts = list(client.paginate("/api/v2/externalcontacts/scan/contacts", page_size=100))
    assert len(contacts) == 310
    query = list(
        client.paginate(
            "/api/v2/analytics/conversations/details/query",
            body={"interval": INTERVAL},
            page_size=100,
        )
    )
    assert len(query) == 420
    job = list(
        client.paginate("/api/v2/analytics/conversations/details/jobs", body={"interval": INTERVAL})
    )
    assert len(job) == 420
    per = sim.journal()["per_resource_ok"]
    assert any(k.startswith("POST /api/v2/analytics/conversations/details/jobs") for k in per)


@pytest.mark.sim("--users", "600", "--token-ttl", "1s", "--latency", "30ms")
def test_paginate_across_expiring_tokens_with_processing_between_items(sim, auth):
    client = tokenwarden.Client(auth)
    seen = 0
    for user in client.paginate("/api/v2/users", page_size=25):
        seen += 1
        if seen % 25 == 0:
            time.sleep(0.05)  # processing between pages
    assert seen == 600
    j = sim.journal()
    assert j["tokens_issued"] >= 2 and j["api_expired_token"] == 0


@pytest.mark.sim()
def test_leaving_a_listing_early_stops_it(sim, auth):
    client = tokenwarden.Client(auth)
    it = client.paginate("/api/v2/users", page_size=10)
    first = [next(it) for _ in range(5)]
    assert len(first) == 5
    del it
    time.sleep(0.2)
    # The walk fetched ahead (at most 500 items: 50 pages of 10), not the whole listing (100).
    assert sim.journal()["api_ok"] <= 55


@pytest.mark.sim()
def test_an_unreachable_api_is_a_transient_error(sim):
    # Nothing listens on port 9: the connection is refused.
    auth = tokenwarden.Auth(sim.token_url, "tw-client", "tw-secret", api_base="http://127.0.0.1:9")
    client = tokenwarden.Client(auth, timeout=1, retry_for=1)
    with pytest.raises(tokenwarden.TransientError) as e:
        client.request("POST", "/api/v2/x", json={})
    assert e.value.retryable
