"""``tokenwarden.Auth``: a managed token for requests, httpx and your own code."""

from __future__ import annotations

import threading
import warnings
from typing import Any, Generator, Optional, Set, Tuple
from urllib.parse import urlsplit

from . import _tokenwarden as _native

__all__ = ["Auth", "TokenwardenWarning"]


class TokenwardenWarning(UserWarning):
    """A configuration problem worth telling (an unknown key in a profile, a file others can
    read, a setting the Python package does not use)."""


def _bases() -> Tuple[type, ...]:
    # The same object is `auth=` for requests and for httpx: it subclasses their auth base
    # classes when they are installed (neither is required).
    bases = []
    try:
        import requests.auth

        bases.append(requests.auth.AuthBase)
    except ImportError:
        pass
    try:
        import httpx

        bases.append(httpx.Auth)
    except ImportError:
        pass
    return tuple(bases) or (object,)


_DEFAULT_PORTS = {"http": 80, "https": 443}

# Most 401 heals for one request, as the library's client: the first always happens, further ones
# only when the new token was revoked meanwhile (see `_heal_again`).
MAX_HEALS = 3


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, as the Rust side spells an origin (default port
    omitted, host in lower case)."""
    p = urlsplit(url)
    scheme = p.scheme.lower()
    host = (p.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = p.port
    except ValueError:
        return ""
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _requests_replayable(request: Any) -> bool:
    """Whether a requests ``PreparedRequest`` can be sent again as it was: no body, bytes or
    text, or a file whose start position was recorded. A generator is sent once."""
    body = request.body
    if body is None or isinstance(body, (bytes, str)):
        return True
    return getattr(request, "_body_position", None) is not None


def _httpx_replayable(request: Any) -> bool:
    """Whether an ``httpx.Request``'s body is known bytes (content, json, form data), not a
    stream that can be sent once."""
    import httpx

    return isinstance(request.stream, httpx.ByteStream)


class Auth(*_bases()):  # type: ignore[misc]
    """A valid access token whenever one is needed, refreshed before it expires.

    The refresh runs on tokenwarden's own runtime (Rust, on background threads): while a valid
    token exists no caller ever waits for one, and a caller who must wait (the first call, or
    after the token was refused) waits with the GIL released; async callers await, so the event
    loop keeps running. However many threads and tasks ask, one token request is made at a time.

    Use it as ``auth=`` with **requests** (functions and ``Session``) and **httpx** (``Client``
    and ``AsyncClient``): it sets ``Authorization: Bearer ...`` on requests to the API's origin
    (and to no other host), and heals a ``401`` once: the token that failed is reported with
    :meth:`rejected`, and the request is sent again with the new one when its body can be sent
    again (no body, bytes, text, a file; not a generator or stream). A second ``401`` is returned
    to you, unless the new token was revoked meanwhile (the API had accepted it, or another request
    had it replaced): then, as the library's client does, it is healed again, at most 3 times per
    request. A ``403`` is returned as it is: a new token never cures a missing permission.

    Args:
        token_url: the OAuth token endpoint, e.g. ``https://login.mypurecloud.ie/oauth/token``.
        client_id: the OAuth client id.
        client_secret: the client secret. It is copied into memory that is wiped when the
            ``Auth`` is dropped, and never kept in a Python object.
        scope: space-separated scopes to request (default: the client's).
        api_base: where the API is; the token is sent only to this origin. Default: beside
            the token URL (``login.X`` → ``api.X``, else the token URL's origin).
        client_auth: ``"basic"`` (HTTP Basic, Genesys's way; the default) or ``"form"``.
        allow_insecure_http: allow plain ``http://`` to hosts other than loopback (tokens and
            the secret would travel in clear text).

    Raises:
        ConfigurationError: a URL or argument is not usable.

    Example::

        auth = tokenwarden.Auth.from_env()
        requests.get(f"{auth.api_base}/api/v2/users/me", auth=auth)
    """

    # httpx: the flows below need neither body read in advance.
    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: Optional[str] = None,
        *,
        api_base: Optional[str] = None,
        client_auth: str = "basic",
        allow_insecure_http: bool = False,
    ) -> None:
        self._setup(
            _native.Auth(
                token_url,
                client_id,
                client_secret,
                scope,
                api_base,
                client_auth,
                allow_insecure_http,
            )
        )

    def _setup(self, core: Any) -> None:
        self._core = core
        self._origin_str: str = core.origin
        self._warned: Set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, profile: Optional[str] = None) -> "Auth":
        """The credentials the ``tokenwarden`` command line would use, from the same places in
        the same order: the environment (``GENESYSCLOUD_REGION``,
        ``GENESYSCLOUD_OAUTHCLIENT_ID``, ``GENESYSCLOUD_OAUTHCLIENT_SECRET``,
        ``GENESYSCLOUD_ACCESS_TOKEN``, ``TOKENWARDEN_*``), then the profile in tokenwarden's
        config file (``TOKENWARDEN_CONFIG``, default ``~/.config/tokenwarden/config.toml``),
        then the same profile in the gc CLI's ``~/.gc/config.toml``. Regions are given by name
        (``eu-west-1``) or domain (``mypurecloud.ie``).

        Args:
            profile: the profile to read (default: ``TOKENWARDEN_PROFILE``, else ``default``).

        Warnings about the configuration (an unknown key, a file others can read) are issued
        as :class:`TokenwardenWarning`.

        Raises:
            ConfigurationError: settings are missing or wrong; the message says which, and
                where each came from.
        """
        core, found = _native.Auth.from_env(profile)
        for text in found:
            warnings.warn(text, TokenwardenWarning, stacklevel=2)
        self = cls.__new__(cls)
        self._setup(core)
        return self

    # -- tokens ------------------------------------------------------------------------------

    def token(self) -> str:
        """A token valid now.

        Returns at once while the token is fresh, also during its refresh window (a refresh then
        runs in the background). Waits, with the GIL released, only when there is no valid
        token.

        Raises:
            CredentialsError: the token endpoint refuses the credentials (at once, no retries).
            TransientError: the token endpoint kept failing and no valid token is left.
        """
        return self._core.token()

    async def token_async(self) -> str:
        """:meth:`token` for asyncio: never blocks the event loop."""
        t = self._core.token_nowait()
        if t is not None:
            return t
        return await self._core.token_async()

    def rejected(self, token: str) -> str:
        """Reports that the API refused ``token`` (HTTP 401) and returns the token to retry with.

        Keyed on the refused token: if it is still the current one it is withdrawn at once and
        one refresh starts, however many callers report it; if it was already replaced, the
        current token is returned and nothing is fetched.
        """
        return self._core.rejected(token)

    async def rejected_async(self, token: str) -> str:
        """:meth:`rejected` for asyncio."""
        return await self._core.rejected_async(token)

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return self._core.token_url

    @property
    def client_id(self) -> Optional[str]:
        """The OAuth client id (``None`` for a static token)."""
        return self._core.client_id

    @property
    def api_base(self) -> str:
        """The API base URL (``https://api.mypurecloud.ie``); the token is sent to its origin
        only."""
        return self._core.api_base

    @property
    def grant(self) -> str:
        """``client_credentials``, or ``static`` for ``GENESYSCLOUD_ACCESS_TOKEN``."""
        return self._core.grant

    def metrics(self) -> dict:
        """Counters: ``tokens_fetched``, ``token_requests``, ``proactive_refreshes``,
        ``reactive_refreshes``, ``rejected_refreshes``, ``refresh_failures``."""
        return dict(self._core.metrics())

    def __repr__(self) -> str:
        return (
            f"tokenwarden.Auth(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"api_base={self.api_base!r}, grant={self.grant!r})"
        )

    def __reduce__(self):
        raise TypeError("a tokenwarden.Auth holds a secret and cannot be pickled")

    def _heal(self, heals: int, token: str) -> bool:
        """Whether a 401 for ``token`` is healed, ``heals`` heals into the request."""
        return heals == 0 or (heals < MAX_HEALS and self._core.may_heal_again(token))

    def _carries(self, url: str) -> bool:
        """Whether a request to ``url`` gets the token: only on the API's origin."""
        origin = _origin(url)
        if origin == self._origin_str:
            return True
        with self._lock:
            first = origin not in self._warned
            self._warned.add(origin)
        if first:
            warnings.warn(
                f"tokenwarden.Auth: not sending the token to {origin}: it is for "
                f"{self._origin_str} (give api_base= to change)",
                TokenwardenWarning,
                stacklevel=4,
            )
        return False

    # -- requests ----------------------------------------------------------------------------

    def __call__(self, r: Any) -> Any:
        """requests' auth hook: sets the bearer and heals one 401 (see the class doc)."""
        if not self._carries(r.url):
            return r
        token = self.token()
        r.headers["Authorization"] = "Bearer " + token
        r._tokenwarden_token = token
        r.register_hook("response", self._requests_response)
        return r

    def _requests_response(self, resp: Any, **kwargs: Any) -> Any:
        req = resp.request
        token = getattr(req, "_tokenwarden_token", None)
        if token is None or getattr(req, "_tokenwarden_healed", False):
            return resp
        heals = 0
        while resp.status_code == 401 and self._heal(heals, token) and _requests_replayable(req):
            resp = self._requests_retry(resp, token, **kwargs)
            req = resp.request
            token = req._tokenwarden_token
            heals += 1
        if resp.status_code != 401:
            self._core.accepted(token)
        return resp

    def _requests_retry(self, resp: Any, token: str, **kwargs: Any) -> Any:
        req = resp.request
        fresh = self.rejected(token)
        # Read and release the refused answer so that its connection is reused.
        resp.content
        resp.close()
        retry = req.copy()
        retry.headers["Authorization"] = "Bearer " + fresh
        retry._tokenwarden_token = fresh
        retry._tokenwarden_healed = True
        if getattr(retry, "_body_position", None) is not None:
            from requests.utils import rewind_body

            rewind_body(retry)
        from requests.cookies import extract_cookies_to_jar

        if getattr(retry, "_cookies", None) is not None:
            extract_cookies_to_jar(retry._cookies, req, resp.raw)
            retry.prepare_cookies(retry._cookies)
        answer = resp.connection.send(retry, **kwargs)
        answer.history.append(resp)
        answer.request = retry
        return answer

    # -- httpx -------------------------------------------------------------------------------

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        """httpx's sync flow: sets the bearer and heals one 401 (see the class doc)."""
        if not self._carries(str(request.url)):
            yield request
            return
        token = self.token()
        request.headers["Authorization"] = "Bearer " + token
        response = yield request
        heals = 0
        while response.status_code == 401 and self._heal(heals, token) and _httpx_replayable(request):
            token = self.rejected(token)
            request.headers["Authorization"] = "Bearer " + token
            heals += 1
            response = yield request
        if response.status_code != 401:
            self._core.accepted(token)

    async def async_auth_flow(self, request: Any) -> Any:
        """httpx's async flow: as :meth:`sync_auth_flow`, awaiting tokens (the event loop never
        blocks)."""
        if not self._carries(str(request.url)):
            yield request
            return
        token = await self.token_async()
        request.headers["Authorization"] = "Bearer " + token
        response = yield request
        heals = 0
        while response.status_code == 401 and self._heal(heals, token) and _httpx_replayable(request):
            token = await self.rejected_async(token)
            request.headers["Authorization"] = "Bearer " + token
            heals += 1
            response = yield request
        if response.status_code != 401:
            self._core.accepted(token)

    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        """httpx's generic flow (used by neither client: both call the flows above)."""
        yield from self.sync_auth_flow(request)
