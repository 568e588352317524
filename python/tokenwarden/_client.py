"""``tokenwarden.Client`` and ``AsyncClient``: the Rust library's API client from Python."""

from __future__ import annotations

import json as _json
from typing import (
    Any,
    AsyncIterator,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _tokenwarden as _native
from ._auth import Auth
from .errors import HTTPStatusError

__all__ = ["Client", "AsyncClient", "Response"]

Params = Union[Mapping[str, Any], Sequence[Tuple[str, Any]], None]


class Response:
    """An API answer: status, headers, body.

    Attributes:
        status: the HTTP status (also ``status_code``, as in requests and httpx).
        headers: header names in lower case; repeated headers joined with ``", "``.
        content: the body, as bytes.
        url: the URL that answered (after redirects).
    """

    __slots__ = ("status", "headers", "content", "url")

    def __init__(self, status: int, headers: Dict[str, str], content: bytes, url: str) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        self.url = url

    @classmethod
    def _from(cls, answer: Tuple[int, List[Tuple[str, str]], bytes, str]) -> "Response":
        status, pairs, content, url = answer
        headers: Dict[str, str] = {}
        for k, v in pairs:
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        return cls(status, headers, content, url)

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self.status

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body)."""
        if not self.content:
            return None
        return _json.loads(self.content)

    def raise_for_status(self) -> "Response":
        """Raises :class:`HTTPStatusError` for a 4xx or 5xx status; returns the response
        otherwise."""
        if self.status >= 400:
            raise HTTPStatusError(
                f"HTTP {self.status} from {self.url}: {self.text[:300]}",
                status=self.status,
            )
        return self

    def __repr__(self) -> str:
        return f"<tokenwarden.Response [{self.status}]>"


def _pairs(params: Params) -> Optional[List[Tuple[str, str]]]:
    if params is None:
        return None
    items: Iterable[Tuple[str, Any]] = (
        params.items() if isinstance(params, Mapping) else params
    )
    out = []
    for k, v in items:
        if isinstance(v, (list, tuple)):
            out.extend((str(k), _text(x)) for x in v)
        elif v is not None:
            out.append((str(k), _text(v)))
    return out


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _body(
    json: Any, data: Union[bytes, str, None], headers: Optional[Mapping[str, str]]
) -> Tuple[Optional[bytes], Optional[str], Optional[List[Tuple[str, str]]]]:
    hs = [(str(k), str(v)) for k, v in headers.items()] if headers else None
    if json is not None and data is not None:
        raise TypeError("give json= or data=, not both")
    if json is not None:
        return _json.dumps(json, separators=(",", ":")).encode(), "application/json", hs
    if isinstance(data, str):
        return data.encode(), None, hs
    return data, None, hs


def _with_query(path: str, key: str, value: int) -> str:
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}{key}={value}"


def _listing(
    path: str, body: Any, style: str, page_size: Optional[int]
) -> Tuple[str, str, Optional[bytes]]:
    """The paging style, path and body of a listing (``auto``: as ``tokenwarden paginate``)."""
    if style == "auto":
        if body is not None:
            style = "job" if path.rstrip("/").endswith("/jobs") else "query"
        elif "/scan/" in path or "cursor=" in path:
            style = "cursor"
        else:
            style = "pages"
    if page_size is not None:
        if style == "pages":
            path = _with_query(path, "pageSize", page_size)
        elif style == "cursor":
            path = _with_query(path, "limit", page_size)
        elif style == "query":
            body = dict(body or {})
            paging = dict(body.get("paging") or {})
            paging["pageSize"] = page_size
            body["paging"] = paging
    encoded = None if body is None else _json.dumps(body).encode()
    return style, path, encoded


class _Base:
    def __init__(
        self,
        auth: Optional[Auth] = None,
        api_base: Optional[str] = None,
        *,
        rate_per_second: Optional[int] = None,
        timeout: Optional[float] = None,
        max_response_bytes: Optional[int] = None,
        user_agent: Optional[str] = None,
        retry_for: Optional[float] = None,
    ) -> None:
        self.auth = auth if auth is not None else Auth.from_env()
        self._core = _native.Client(
            self.auth._core,
            api_base,
            rate_per_second,
            timeout,
            max_response_bytes,
            user_agent,
            retry_for,
        )

    @property
    def api_base(self) -> str:
        """The API base URL."""
        return self._core.api_base

    @property
    def learned_rate(self) -> Optional[float]:
        """The request rate (per second) learned from 429s and rate-limit headers, if any."""
        return self._core.learned_rate

    def __repr__(self) -> str:
        return f"tokenwarden.{type(self).__name__}(api_base={self.api_base!r})"


class Client(_Base):
    """Requests to the API with the managed token, blocking (the GIL is released while waiting).

    Each request: the bearer from ``auth``; a ``401`` heals once (keyed on the refused token);
    ``429`` waits out ``Retry-After`` and the client learns the rate the API sustains, so many
    threads together stay under the limit; ``5xx`` and connection failures are retried with
    backoff when the request may be sent again (``GET``, ``PUT``, ``DELETE``..., or a ``POST``
    marked ``replay_safe=True``); a ``403`` raises :class:`ForbiddenError`. Other answers (2xx,
    404, 4xx) are returned as :class:`Response`. One client may be shared by any number of
    threads.

    Args:
        auth: the tokens (default: :meth:`Auth.from_env`).
        api_base: where the API is (default: ``auth.api_base``).
        rate_per_second: a fixed request limit on top of the learned one.
        timeout: seconds for each attempt of a request (default 30).
        max_response_bytes: the largest answer accepted (default 64 MiB).
        user_agent: the ``User-Agent`` header.
        retry_for: how long (seconds) 429s, 5xx and network failures are retried (default 60).

    Example::

        client = tokenwarden.Client(tokenwarden.Auth.from_env())
        me = client.get("/api/v2/tokens/me").json()
        for user in client.paginate("/api/v2/users", page_size=100):
            ...
    """

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        data: Union[bytes, str, None] = None,
        headers: Optional[Mapping[str, str]] = None,
        replay_safe: bool = False,
        timeout: Optional[float] = None,
    ) -> Response:
        """Sends one request (``path`` relative to the API base, or a URL on its origin).

        Args:
            params: query parameters (a dict or pairs; a list value repeats the key).
            json: a body to send as JSON.
            data: a body of bytes or text (set ``Content-Type`` in ``headers``).
            headers: extra headers (``Authorization`` is the client's own).
            replay_safe: mark a ``POST`` or ``PATCH`` that only reads (the analytics query) as
                safe to send again after a 5xx or a timeout.
            timeout: seconds for each attempt.

        Raises:
            ForbiddenError: the API answered 403.
            CredentialsError: the credentials are refused, or a fresh token was refused too.
            TransientError: 429s, 5xx or network failures outlasted the retries.
        """
        body, ctype, hs = _body(json, data, headers)
        answer = self._core.request(
            method, path, _pairs(params), hs, body, ctype, replay_safe, timeout
        )
        return Response._from(answer)

    def get(self, path: str, *, params: Params = None, **kwargs: Any) -> Response:
        """``GET`` (see :meth:`request`)."""
        return self.request("GET", path, params=params, **kwargs)

    def post(self, path: str, *, json: Any = None, **kwargs: Any) -> Response:
        """``POST`` (see :meth:`request`)."""
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path: str, *, json: Any = None, **kwargs: Any) -> Response:
        """``PUT`` (see :meth:`request`)."""
        return self.request("PUT", path, json=json, **kwargs)

    def patch(self, path: str, *, json: Any = None, **kwargs: Any) -> Response:
        """``PATCH`` (see :meth:`request`)."""
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Response:
        """``DELETE`` (see :meth:`request`)."""
        return self.request("DELETE", path, **kwargs)

    def paginate(
        self,
        path: str,
        *,
        body: Any = None,
        style: str = "auto",
        page_size: Optional[int] = None,
    ) -> Iterator[Any]:
        """Every item of a listing, page after page, however many tokens expire on the way.

        Styles (``auto`` picks as ``tokenwarden paginate`` does): ``pages`` (``pageNumber`` and
        ``nextUri``, e.g. ``/api/v2/users``), ``cursor`` (``cursor``/``after``, e.g.
        ``/api/v2/externalcontacts/scan/contacts``), ``query`` (the analytics details query: a
        ``POST`` of ``body`` with ``paging``), ``job`` (an analytics job at ``path`` ending in
        ``/jobs``: created with ``body``, polled, then its results). Pages are fetched ahead in
        the background while you process items.

        Raises:
            as :meth:`request`, when a page cannot be fetched.
        """
        style, path, encoded = _listing(path, body, style, page_size)
        pages = self._core.paginate(path, style, encoded)
        while True:
            batch = pages.next_batch()
            if batch is None:
                return
            yield from _json.loads(batch)

    def close(self) -> None:
        """Nothing to release (connections close when the client is dropped)."""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient(_Base):
    """:class:`Client` for asyncio: the same behaviour, awaited; the event loop never blocks.

    Example::

        async with tokenwarden.AsyncClient(auth) as client:
            users = await asyncio.gather(*(client.get(f"/api/v2/users/{i}") for i in ids))
            async for user in client.paginate("/api/v2/users"):
                ...
    """

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        data: Union[bytes, str, None] = None,
        headers: Optional[Mapping[str, str]] = None,
        replay_safe: bool = False,
        timeout: Optional[float] = None,
    ) -> Response:
        """Sends one request; see :meth:`Client.request`."""
        body, ctype, hs = _body(json, data, headers)
        answer = await self._core.request_async(
            method, path, _pairs(params), hs, body, ctype, replay_safe, timeout
        )
        return Response._from(answer)

    async def get(self, path: str, *, params: Params = None, **kwargs: Any) -> Response:
        """``GET`` (see :meth:`Client.request`)."""
        return await self.request("GET", path, params=params, **kwargs)

    async def post(self, path: str, *, json: Any = None, **kwargs: Any) -> Response:
        """``POST`` (see :meth:`Client.request`)."""
        return await self.request("POST", path, json=json, **kwargs)

    async def put(self, path: str, *, json: Any = None, **kwargs: Any) -> Response:
        """``PUT`` (see :meth:`Client.request`)."""
        return await self.request("PUT", path, json=json, **kwargs)

    async def patch(self, path: str, *, json: Any = None, **kwargs: Any) -> Response:
        """``PATCH`` (see :meth:`Client.request`)."""
        return await self.request("PATCH", path, json=json, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Response:
        """``DELETE`` (see :meth:`Client.request`)."""
        return await self.request("DELETE", path, **kwargs)

    async def paginate(
        self,
        path: str,
        *,
        body: Any = None,
        style: str = "auto",
        page_size: Optional[int] = None,
    ) -> AsyncIterator[Any]:
        """Every item of a listing, as an async iterator; see :meth:`Client.paginate`."""
        style, path, encoded = _listing(path, body, style, page_size)
        pages = self._core.paginate(path, style, encoded)
        while True:
            batch = await pages.next_batch_async()
            if batch is None:
                return
            for item in _json.loads(batch):
                yield item

    async def aclose(self) -> None:
        """Nothing to release (connections close when the client is dropped)."""

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
