"""tokenwarden.genesys.authorize with the official SDK (PureCloudPlatformClientV2, pinned)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import tokenwarden

gc = pytest.importorskip("PureCloudPlatformClientV2")
from PureCloudPlatformClientV2.rest import ApiException  # noqa: E402


def test_the_sdk_is_imported_only_when_used():
    import subprocess

    code = (
        "import sys, tokenwarden, tokenwarden.genesys; "
        "assert 'PureCloudPlatformClientV2' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.sim("--token-ttl", "1s", "--revoke-every", "9")
def test_the_sdk_gets_a_managed_token_for_every_call_and_heals_401s(sim, auth):
    api = tokenwarden.genesys.authorize(gc.ApiClient(host=sim.base_url), auth)
    users = gc.UsersApi(api)
    for i in range(40):
        user = users.get_user(f"user-{i + 1:06d}")
        assert user.id == f"user-{i + 1:06d}"
    listing = users.get_users(page_size=10, page_number=2)
    assert len(listing.entities) == 10
    # From several threads at once, and with the SDK's callback= threads.
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: users.get_user(f"user-{i + 1:06d}").id, range(40)))
    assert len(got) == 40
    j = sim.journal()
    assert j["api_revoked_token"] >= 8
    assert j["api_expired_token"] == 0
    assert j["max_concurrent_token_requests"] == 1


@pytest.mark.sim("--revoke-every", "5")
def test_without_the_hook_the_sdk_fails_on_the_first_revocation(sim, auth):
    # The control: the same job with the token set once, as the SDK's tutorials do.
    api = gc.ApiClient(host=sim.base_url)
    api.access_token = auth.token()
    users = gc.UsersApi(api)
    with pytest.raises(ApiException) as e:
        for i in range(10):
            users.get_user(f"user-{i + 1:06d}")
    assert e.value.status == 401


@pytest.mark.sim("--forbidden-path", "/api/v2/routing")
def test_a_403_from_the_sdk_is_raised_at_once(sim, auth):
    api = tokenwarden.genesys.authorize(gc.ApiClient(host=sim.base_url), auth)
    with pytest.raises(ApiException) as e:
        gc.RoutingApi(api).get_routing_queues()
    assert e.value.status == 403
    j = sim.journal()
    assert j["api_forbidden"] == 1 and j["token_requests"] == 1


def test_the_default_host_follows_the_auth():
    auth = tokenwarden.Auth("https://login.mypurecloud.ie/oauth/token", "id", "secret")
    api = tokenwarden.genesys.authorize(gc.ApiClient(), auth)
    assert api.host == "https://api.mypurecloud.ie"
