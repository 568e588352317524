"""The native core of the ``tokenwarden`` package (PyO3). Use the ``tokenwarden`` package's
classes; these are their building blocks."""

from typing import Awaitable, List, Optional, Tuple

__version__: str

_Answer = Tuple[int, List[Tuple[str, str]], bytes, str]

class Auth:
    """A TokenManager: a valid token, refreshed on tokenwarden's runtime."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: Optional[str] = None,
        api_base: Optional[str] = None,
        client_auth: str = "basic",
        allow_insecure_http: bool = False,
    ) -> None: ...
    @staticmethod
    def from_env(profile: Optional[str] = None) -> Tuple["Auth", List[str]]:
        """The core for the command line's settings, and the warnings to show."""
    def token(self) -> str:
        """A valid token; waits (GIL released) only when none is at hand."""
    def token_nowait(self) -> Optional[str]:
        """The token if one is at hand now, else None (never waits)."""
    def token_async(self) -> Awaitable[str]:
        """An awaitable of a valid token."""
    def rejected(self, token: str) -> str:
        """Reports a refused token; returns the token to retry with."""
    def rejected_async(self, token: str) -> Awaitable[str]:
        """An awaitable of rejected(token)."""
    def accepted(self, token: str) -> None:
        """Notes that the API accepted the token (any answer but 401)."""
    def may_heal_again(self, token: str) -> bool:
        """Whether a 401 right after a heal may be healed again (the token was revoked meanwhile)."""
    @property
    def token_url(self) -> str:
        """The token endpoint."""
    @property
    def client_id(self) -> Optional[str]:
        """The OAuth client id."""
    @property
    def api_base(self) -> str:
        """The API base URL."""
    @property
    def origin(self) -> str:
        """The API's origin: the only one the token is sent to."""
    @property
    def grant(self) -> str:
        """client_credentials or static."""
    def metrics(self) -> List[Tuple[str, int]]:
        """The token counters."""

class Client:
    """An ApiClient: 401 heal, 429 waits, learned pacing, 5xx retries."""

    def __init__(
        self,
        auth: Auth,
        api_base: Optional[str] = None,
        rate_per_second: Optional[int] = None,
        timeout: Optional[float] = None,
        max_response_bytes: Optional[int] = None,
        user_agent: Optional[str] = None,
        retry_for: Optional[float] = None,
    ) -> None: ...
    def request(
        self,
        method: str,
        path: str,
        params: Optional[List[Tuple[str, str]]] = None,
        headers: Optional[List[Tuple[str, str]]] = None,
        body: Optional[bytes] = None,
        content_type: Optional[str] = None,
        replay_safe: bool = False,
        timeout: Optional[float] = None,
    ) -> _Answer:
        """Sends one request; waits with the GIL released."""
    def request_async(
        self,
        method: str,
        path: str,
        params: Optional[List[Tuple[str, str]]] = None,
        headers: Optional[List[Tuple[str, str]]] = None,
        body: Optional[bytes] = None,
        content_type: Optional[str] = None,
        replay_safe: bool = False,
        timeout: Optional[float] = None,
    ) -> Awaitable[_Answer]:
        """An awaitable of request(...)."""
    def paginate(self, path: str, style: str, body: Optional[bytes] = None) -> "Pages":
        """A listing in the given paging style: pages, cursor, query or job."""
    @property
    def api_base(self) -> str:
        """The API base URL."""
    @property
    def learned_rate(self) -> Optional[float]:
        """The learned request rate per second, if any."""

class Pages:
    """A listing being walked, in batches of items."""

    def next_batch(self) -> Optional[bytes]:
        """The next items as a JSON array, or None at the end."""
    def next_batch_async(self) -> Awaitable[Optional[bytes]]:
        """An awaitable of next_batch()."""
