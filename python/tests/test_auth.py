"""tokenwarden.Auth with requests and httpx, and on its own."""

from __future__ import annotations

import pickle
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import requests

import tokenwarden
from conftest import CLIENT_ID, CLIENT_SECRET


def user_url(sim, i: int) -> str:
    return f"{sim.base_url}/api/v2/users/user-{i % 999 + 1:06d}"


@pytest.mark.sim("--token-ttl", "1s")
def test_one_second_tokens_over_many_calls_with_a_requests_session(sim, auth):
    session = requests.Session()
    session.auth = auth
    calls = 0
    deadline = time.monotonic() + 2.6
    while time.monotonic() < deadline:
        r = session.get(user_url(sim, calls))
        assert r.status_code == 200, r.text
        calls += 1
    j = sim.journal()
    # Tokens were replaced on the way (1-s tokens over 2.6 s), before they expired.
    assert j["tokens_issued"] >= 3, j
    assert j["api_expired_token"] == 0, j
    assert j["api_ok"] == calls
    assert j["max_concurrent_token_requests"] == 1


@pytest.mark.sim("--revoke-every", "25")
def test_revocations_are_healed_once_each_with_requests_functions(sim, auth):
    for i in range(200):
        r = requests.get(user_url(sim, i), auth=auth)
        assert r.status_code == 200, r.text
    j = sim.journal()
    assert j["api_revoked_token"] == 8, j
    # One token at the start, one per revocation: each 401 healed by one refresh.
    assert j["tokens_issued"] == 9, j
    assert j["api_ok"] == 200


@pytest.mark.sim("--revoke-every", "10", "--token-ttl", "1s")
def test_httpx_client_sets_the_bearer_and_heals(sim, auth):
    with httpx.Client(auth=auth) as client:
        for i in range(120):
            r = client.get(user_url(sim, i))
            assert r.status_code == 200, r.text
        # A POST with a body is sent again after the 401 (a 401 proves nothing was done).
        sim.revoke_all()
        r = client.post(
            f"{sim.base_url}/api/v2/analytics/conversations/details/query",
            json={"interval": "2024-01-01T00:00:00Z/2024-01-01T01:00:00Z"},
        )
        assert r.status_code == 200, r.text
        assert len(r.history) == 1 and r.history[0].status_code == 401
    j = sim.journal()
    assert j["api_ok"] == 121
    assert j["api_expired_token"] == 0


@pytest.mark.sim()
def test_a_streamed_body_is_not_replayed(sim, auth):
    auth.token()
    sim.revoke_all()

    def chunks():
        yield b'{"interval": "2024-01-01T00:00:00Z/2024-01-01T01:00:00Z"}'

    url = f"{sim.base_url}/api/v2/analytics/conversations/details/query"
    r = requests.post(url, data=chunks(), auth=auth, headers={"Content-Type": "application/json"})
    # The generator was consumed by the first attempt: the 401 is the answer.
    assert r.status_code == 401
    # Nothing reported that refusal: the next request carries the revoked token again, gets the
    # 401, and is healed like any other.
    r = requests.post(url, json={"interval": "2024-01-01T00:00:00Z/2024-01-01T01:00:00Z"}, auth=auth)
    assert r.status_code == 200


@pytest.mark.sim("--token-ttl", "1s", "--token-latency", "100ms")
def test_eight_threads_on_one_auth_make_one_token_request_at_a_time(sim, auth):
    session = requests.Session()
    session.auth = auth
    deadline = time.monotonic() + 2.5
    statuses = []

    def work(k: int) -> None:
        i = k
        while time.monotonic() < deadline:
            statuses.append(session.get(user_url(sim, i)).status_code)
            i += 8

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert set(statuses) == {200}
    j = sim.journal()
    assert j["max_concurrent_token_requests"] == 1, j
    assert j["api_expired_token"] == 0, j
    # About one token per refresh period (0.5-0.75 s of a 1-s token), not one per thread.
    assert 3 <= j["tokens_issued"] <= 7, j
    assert j["token_requests"] == j["tokens_issued"]


@pytest.mark.sim("--forbidden-path", "/api/v2/routing")
def test_a_403_is_never_healed(sim, auth):
    url = f"{sim.base_url}/api/v2/routing/queues"
    r = requests.get(url, auth=auth)
    assert r.status_code == 403
    with httpx.Client(auth=auth) as client:
        assert client.get(url).status_code == 403
    j = sim.journal()
    assert j["api_forbidden"] == 2, j
    assert j["token_requests"] == 1, j
    # The library's client raises it, as a PermissionError too.
    with pytest.raises(tokenwarden.ForbiddenError) as e:
        tokenwarden.Client(auth).get("/api/v2/routing/queues")
    assert isinstance(e.value, PermissionError)
    assert e.value.status == 403 and e.value.kind == "forbidden"
    assert "permission" in str(e.value)
    assert sim.journal()["token_requests"] == 1


@pytest.mark.sim()
def test_wrong_credentials_raise_a_clear_error_at_once(sim):
    secret = "Wr0ng-s3cret-value-42"
    auth = tokenwarden.Auth(sim.token_url, CLIENT_ID, secret)
    started = time.monotonic()
    with pytest.raises(tokenwarden.CredentialsError) as e:
        auth.token()
    assert time.monotonic() - started < 1.0
    assert "rejected the credentials" in str(e.value)
    assert e.value.status == 401
    # The same from requests and httpx: an exception, not a 401 to inspect.
    with pytest.raises(tokenwarden.CredentialsError):
        requests.get(f"{sim.base_url}/api/v2/users/user-000001", auth=auth)
    with pytest.raises(tokenwarden.CredentialsError):
        httpx.get(f"{sim.base_url}/api/v2/users/user-000001", auth=auth)
    # No secret in the message, the repr or the traceback.
    shown = str(e.value) + repr(e.value) + "".join(traceback.format_exception(e.value))
    shown += repr(auth)
    assert secret not in shown
    assert isinstance(e.value, tokenwarden.Error)
    # A permanent failure is not retried: the token endpoint was asked once per cool-down.
    assert sim.journal()["token_requests"] == 1


@pytest.mark.sim()
def test_no_token_or_secret_in_reprs_and_the_auth_cannot_be_pickled(sim, auth):
    token = auth.token()
    assert token not in repr(auth) and CLIENT_SECRET not in repr(auth)
    with pytest.raises(TypeError):
        pickle.dumps(auth)
    r = tokenwarden.Client(auth).get("/api/v2/users/user-000001")
    assert token not in repr(r)


@pytest.mark.sim()
def test_rejected_is_keyed_on_the_refused_token(sim, auth):
    first = auth.token()
    second = auth.rejected(first)
    assert second != first
    # Reported again (a second 401 of the same token): the current token, nothing fetched.
    assert auth.rejected(first) == second
    assert auth.token() == second
    assert sim.journal()["tokens_issued"] == 2


@pytest.mark.sim("--token-ttl", "2s", "--token-latency", "200ms")
def test_no_caller_waits_for_a_refresh_while_a_token_is_valid(sim, auth):
    auth.token()
    slowest = 0.0
    deadline = time.monotonic() + 2.6
    while time.monotonic() < deadline:
        t = time.perf_counter()
        auth.token()
        slowest = max(slowest, time.perf_counter() - t)
        time.sleep(0.005)
    # The token was refreshed (in the background) and no call waited for the 200-ms request.
    assert sim.journal()["tokens_issued"] >= 2
    assert slowest < 0.1, slowest


@pytest.mark.sim("--token-latency", "1s")
def test_a_waiting_thread_releases_the_gil(sim, auth):
    done = threading.Event()

    def fetch() -> None:
        auth.token()
        done.set()

    t = threading.Thread(target=fetch)
    t.start()
    spins = 0
    while not done.is_set():
        spins += 1
    t.join()
    # The main thread ran Python all along (a held GIL would leave it a few switch intervals).
    assert spins > 100_000, spins


@pytest.mark.sim()
def test_the_token_is_sent_to_the_api_only(sim, auth):
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["authorization"] = request.headers.get("authorization")
        return httpx.Response(200)

    with pytest.warns(tokenwarden.TokenwardenWarning, match="not sending the token"):
        with httpx.Client(auth=auth, transport=httpx.MockTransport(handler)) as c:
            c.get("https://elsewhere.example/x")
    assert seen["authorization"] is None


def test_bad_arguments_are_configuration_errors():
    with pytest.raises(tokenwarden.ConfigurationError) as e:
        tokenwarden.Auth("not a url", CLIENT_ID, CLIENT_SECRET)
    assert isinstance(e.value, ValueError)
    with pytest.raises(tokenwarden.ConfigurationError):
        tokenwarden.Auth("http://example.com/oauth/token", CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(tokenwarden.ConfigurationError):
        tokenwarden.Auth("http://127.0.0.1:9/oauth/token", CLIENT_ID, "")


@pytest.mark.sim()
def test_an_auth_used_in_a_forked_child_fails_clearly_instead_of_hanging(sim, auth):
    import os

    auth.token()
    pid = os.fork()
    if pid == 0:
        try:
            auth.rejected(auth.token())
            code = 1
        except tokenwarden.ConfigurationError as e:
            code = 0 if "forked" in str(e) else 2
        except BaseException:
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent goes on as before.
    assert auth.token()
