"""Clients that know nothing of tokenwarden, pointed at the agent (base URL and secret changed,
nothing else): the official Genesys SDK, a hand-written `requests` token manager, authlib. Through
2-s tokens, revocations, 8 threads and a rate limit, every call succeeds, at most one token request
is in flight, and about one is made per token lifetime (read from the simulator's journal)."""

import os
import subprocess
import sys
import time

import requests

# Imported once for the module: the SDK's 4,000 models take seconds to load.
import PureCloudPlatformClientV2 as gc

from conftest import BIN, CLIENT_ID, run_threads, sim_secret, until

# 2-s tokens, a revocation every 60 calls, a per-token rate limit the threads run into.
KNOBS = ("--token-ttl", "2s", "--revoke-every", "60", "--rate-limit", "30",
         "--rate-limit-window", "500ms", "--latency", "2ms")
RUN_FOR = 2.6  # seconds of calls: more than one token lifetime
THREADS = 8


def assert_one_token_per_lifetime(sim, elapsed):
    j = sim.journal()
    assert j["max_concurrent_token_requests"] == 1, j
    assert j["api_revoked_token"] > 0, "the run saw revocations"
    assert j["api_rate_limited"] > 0, "the run hit the rate limit"
    # A token is refreshed at 75% of its 2-s life at the latest; each revocation costs one more.
    lifetimes = int(elapsed / 1.5) + 2
    assert j["tokens_issued"] <= lifetimes + j["api_revoked_token"], j
    return j


def test_genesys_sdk(start):
    sim, agent = start(*KNOBS)
    # Unannounced (no inin-ratelimit-* headers): the agent learns the limit from the 429s.
    sim.configure(rate_limit_headers=False)
    gc.configuration.host = agent.url
    api_client = gc.api_client.ApiClient().get_client_credentials_token("any-client-id", agent.key)
    users = gc.UsersApi(api_client)
    tokens = gc.TokensApi(api_client)
    deadline = time.monotonic() + RUN_FOR
    t0 = time.monotonic()

    def worker(i):
        n = 0
        while until(deadline):
            user = users.get_user(f"user-{(i * 7 + n) % 100:06d}")
            assert user.id and user.name
            n += 1
        assert tokens.get_tokens_me().organization.name
        return n

    counts = run_threads(THREADS, worker)
    assert sum(counts) > 40
    assert_one_token_per_lifetime(sim, time.monotonic() - t0)


class TutorialTokenManager:
    """The widely copied shape: fetch a token with requests, keep it until expires_in - 60 s."""

    def __init__(self, token_url, client_id, client_secret):
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret
        self.token, self.expires = None, 0

    def get(self):
        if self.token is None or time.time() > self.expires - 60:
            r = requests.post(self.token_url, auth=(self.client_id, self.client_secret),
                              data={"grant_type": "client_credentials"}, timeout=10)
            r.raise_for_status()
            body = r.json()
            self.token, self.expires = body["access_token"], time.time() + body["expires_in"]
        return self.token


def test_requests_with_a_hand_written_token_manager(start):
    sim, agent = start(*KNOBS)
    # Unannounced (no inin-ratelimit-* headers): the agent learns the limit from the 429s.
    sim.configure(rate_limit_headers=False)
    tm = TutorialTokenManager(agent.url + "/oauth/token", "any", agent.key)
    deadline = time.monotonic() + RUN_FOR
    t0 = time.monotonic()

    def worker(i):
        s, n = requests.Session(), 0
        while until(deadline):
            r = s.get(agent.url + f"/api/v2/users/user-{i:06d}",
                      headers={"Authorization": "Bearer " + tm.get()}, timeout=10)
            assert r.status_code == 200, r.text
            n += 1
        return n

    counts = run_threads(THREADS, worker)
    assert sum(counts) > 40
    assert_one_token_per_lifetime(sim, time.monotonic() - t0)


def test_authlib(start):
    from authlib.integrations.requests_client import OAuth2Session

    sim, agent = start(*KNOBS)
    # Unannounced (no inin-ratelimit-* headers): the agent learns the limit from the 429s.
    sim.configure(rate_limit_headers=False)
    session = OAuth2Session("any", agent.key, token_endpoint=agent.url + "/oauth/token")
    session.fetch_token(grant_type="client_credentials")
    deadline = time.monotonic() + RUN_FOR
    t0 = time.monotonic()

    def worker(i):
        n = 0
        while until(deadline):
            r = session.get(agent.url + "/api/v2/tokens/me", timeout=10)
            assert r.status_code == 200, r.text
            n += 1
        return n

    counts = run_threads(THREADS, worker)
    assert sum(counts) > 40
    assert_one_token_per_lifetime(sim, time.monotonic() - t0)


def test_a_wrong_secret_is_invalid_client_for_every_client(start):
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.integrations.base_client.errors import OAuthError

    sim, agent = start()
    r = requests.post(agent.url + "/oauth/token", auth=("x", "wrong"),
                      data={"grant_type": "client_credentials"}, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    try:
        OAuth2Session("x", "wrong", token_endpoint=agent.url + "/oauth/token").fetch_token(
            grant_type="client_credentials")
        raise AssertionError("authlib got a token with a wrong secret")
    except OAuthError as e:
        assert e.error == "invalid_client"
    gc.configuration.host = agent.url
    try:
        gc.api_client.ApiClient().get_client_credentials_token("x", "wrong")
        raise AssertionError("the SDK got a token with a wrong secret")
    except Exception as e:  # the SDK raises its ApiException, or fails reading the answer
        assert "access_token" in str(e) or "401" in str(e), e
    j = sim.journal()
    # The agent's own first token is the only token request; nothing else reached the API.
    assert j["token_requests"] == 1 and j["api_requests"] == 0, j


def test_requests_without_the_key_and_from_web_pages_reach_nothing(start):
    sim, agent = start()
    assert requests.get(agent.url + "/api/v2/tokens/me", timeout=5).status_code == 401
    r = requests.get(agent.url + "/api/v2/tokens/me", timeout=5,
                     headers={"Authorization": "Bearer " + agent.key, "Origin": "https://evil.example"})
    assert r.status_code == 403
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    r = requests.get(agent.url.replace("127.0.0.1", "localhost") + "/healthz", timeout=5,
                     headers={"Host": "rebound.evil.example"})
    assert r.status_code == 421
    assert sim.journal()["api_requests"] == 0


def test_exec_runs_a_script_with_its_own_agent(tmp_path):
    from conftest import Sim

    sim = Sim("--token-ttl", "2s")
    try:
        script = (
            "import os, sys, requests\n"
            "url, key = os.environ['TOKENWARDEN_AGENT_URL'], os.environ['TOKENWARDEN_AGENT_KEY']\n"
            "assert 'GENESYSCLOUD_OAUTHCLIENT_SECRET' not in os.environ\n"
            "for i in range(20):\n"
            "    r = requests.get(url + '/api/v2/tokens/me', headers={'Authorization': 'Bearer ' + key}, timeout=5)\n"
            "    assert r.status_code == 200, r.text\n"
            "sys.exit(7)\n"
        )
        p = subprocess.run(
            [BIN, "exec", "--token-url", sim.token_url, "--api-base", sim.url,
             "--client-id", CLIENT_ID, "--", sys.executable, "-c", script],
            env={**os.environ, "GENESYSCLOUD_OAUTHCLIENT_SECRET": sim_secret()},
            capture_output=True, timeout=20,
        )
        assert p.returncode == 7, p.stderr.decode()
        j = sim.journal()
        assert j["api_ok"] == 20 and j["token_requests"] == 1, j
    finally:
        sim.stop()
