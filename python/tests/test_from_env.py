"""Auth.from_env: the command line's settings (environment, tokenwarden profiles, gc profiles)."""

from __future__ import annotations

import pytest

import tokenwarden
from conftest import CLIENT_ID, CLIENT_SECRET

VARS = [
    "GENESYSCLOUD_REGION",
    "GENESYSCLOUD_OAUTHCLIENT_ID",
    "GENESYSCLOUD_OAUTHCLIENT_SECRET",
    "GENESYSCLOUD_ACCESS_TOKEN",
    "TOKENWARDEN_TOKEN_URL",
    "TOKENWARDEN_API_BASE",
    "TOKENWARDEN_PROFILE",
    "TOKENWARDEN_CONFIG",
    "TOKENWARDEN_SCOPE",
    "TOKENWARDEN_CLIENT_AUTH",
    "TOKENWARDEN_GRANT",
    "TOKENWARDEN_TOKEN_STORE",
    "XDG_CONFIG_HOME",
]


@pytest.fixture
def home(tmp_path, monkeypatch):
    for v in VARS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_the_environment_as_the_command_line_reads_it(sim, home, monkeypatch):
    monkeypatch.setenv("TOKENWARDEN_TOKEN_URL", sim.token_url)
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
    auth = tokenwarden.Auth.from_env()
    assert auth.api_base == sim.base_url
    assert auth.client_id == CLIENT_ID
    r = tokenwarden.Client(auth).get("/api/v2/tokens/me")
    assert r.status == 200
    assert CLIENT_SECRET not in repr(auth)


def test_a_tokenwarden_profile(sim, home, monkeypatch):
    cfg = home / ".config" / "tokenwarden"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text(
        f'[sim]\ntoken_url = "{sim.token_url}"\nclient_id = "{CLIENT_ID}"\n'
        f'client_secret_file = "secret.txt"\n'
    )
    (cfg / "secret.txt").write_text(CLIENT_SECRET + "\n")
    (cfg / "config.toml").chmod(0o600)
    (cfg / "secret.txt").chmod(0o600)
    auth = tokenwarden.Auth.from_env("sim")
    assert auth.token()
    monkeypatch.setenv("TOKENWARDEN_PROFILE", "sim")
    assert tokenwarden.Auth.from_env().token_url == sim.token_url


def test_the_gc_cli_profile_and_region_names(home, monkeypatch):
    gc = home / ".gc"
    gc.mkdir()
    (gc / "config.toml").write_text(
        '[DEFAULT]\nenvironment = "mypurecloud.ie"\nclient_credentials = "gc-id"\n'
        'client_secret = "gc-secret-value"\n'
    )
    (gc / "config.toml").chmod(0o600)
    auth = tokenwarden.Auth.from_env()
    assert auth.token_url == "https://login.mypurecloud.ie/oauth/token"
    assert auth.api_base == "https://api.mypurecloud.ie"
    assert auth.client_id == "gc-id"
    # The environment beats the profile: a region name.
    monkeypatch.setenv("GENESYSCLOUD_REGION", "eu-central-1")
    assert tokenwarden.Auth.from_env().api_base == "https://api.mypurecloud.de"
    assert "gc-secret-value" not in repr(tokenwarden.Auth.from_env())


def test_problems_say_what_to_set(home, monkeypatch):
    with pytest.raises(tokenwarden.ConfigurationError, match="no region or token URL"):
        tokenwarden.Auth.from_env()
    monkeypatch.setenv("GENESYSCLOUD_REGION", "eu-west-9")
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", "x")
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", "y")
    with pytest.raises(tokenwarden.ConfigurationError, match="did you mean eu-west-1 or eu-west-2"):
        tokenwarden.Auth.from_env()
    with pytest.raises(tokenwarden.ConfigurationError, match="profile 'nope' not found"):
        tokenwarden.Auth.from_env("nope")


def test_a_typo_in_a_profile_is_a_warning(sim, home):
    cfg = home / ".config" / "tokenwarden"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text(
        f'[default]\ntoken_url = "{sim.token_url}"\nclient_id = "{CLIENT_ID}"\n'
        f'client_secret = "{CLIENT_SECRET}"\nregoin = "x"\n'
    )
    (cfg / "config.toml").chmod(0o600)
    with pytest.warns(tokenwarden.TokenwardenWarning, match="did you mean 'region'"):
        tokenwarden.Auth.from_env()


def test_a_static_access_token(sim, home, monkeypatch):
    token = tokenwarden.Auth(sim.token_url, CLIENT_ID, CLIENT_SECRET).token()
    monkeypatch.setenv("GENESYSCLOUD_ACCESS_TOKEN", token)
    monkeypatch.setenv("TOKENWARDEN_API_BASE", sim.base_url)
    auth = tokenwarden.Auth.from_env()
    assert auth.grant == "static"
    assert auth.token() == token
    assert token not in repr(auth)
