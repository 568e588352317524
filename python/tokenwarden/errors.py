"""The exceptions tokenwarden raises, by kind.

Every exception is a :class:`tokenwarden.Error`. Messages are the Rust library's: they say what
failed and what to check, and never hold a token or a client secret.

=====================  ==========================================================================
exception              raised when
=====================  ==========================================================================
CredentialsError       the token endpoint refuses the credentials (wrong id or secret, disabled
                       client), or the API refuses a freshly issued token: change the
                       configuration, retrying cannot help
ForbiddenError         the API answered 403: a permission or scope is missing (never cured by a
                       new token); also a built-in :class:`PermissionError`
TransientError         the network, the token endpoint or the API kept failing after the retries
                       (connection refused, timeouts, 429s or 5xx until the budget ran out)
ConfigurationError     a setting is missing or wrong (a URL, a profile, an argument); also a
                       :class:`ValueError`
HTTPStatusError        :meth:`Response.raise_for_status` on an error status
=====================  ==========================================================================
"""

from __future__ import annotations

import builtins
from typing import Optional

__all__ = [
    "Error",
    "CredentialsError",
    "ForbiddenError",
    "TransientError",
    "ConfigurationError",
    "HTTPStatusError",
]


class Error(Exception):
    """Base class of every tokenwarden exception.

    Attributes:
        kind: ``"credentials"``, ``"forbidden"``, ``"transient"``, ``"configuration"``,
            ``"status"`` or ``"other"``.
        status: the HTTP status behind the error, if any.
        code: the server's error code (Genesys ``code`` or OAuth ``error``), if any.
        method: the request's method, when the error is about one request.
        path: the request's path (no query string), when the error is about one request.
        retryable: whether a later attempt may succeed.
    """

    kind: str = "other"

    def __init__(
        self,
        message: str,
        *,
        kind: Optional[str] = None,
        status: Optional[int] = None,
        code: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.status = status
        self.code = code
        self.method = method
        self.path = path
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self):  # pickling keeps the message and attributes
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls, message, attrs):
    e = cls(message)
    e.__dict__.update(attrs)
    return e


class CredentialsError(Error):
    """The credentials (or the token they give) are refused: the job must stop and the
    configuration change. Raised at once, never after retries."""

    kind = "credentials"


class ForbiddenError(Error, builtins.PermissionError):
    """HTTP 403: the OAuth client lacks a permission or scope. A new token never cures it, so
    it is never "healed"."""

    kind = "forbidden"

    def __init__(self, message: str, **kwargs) -> None:
        Error.__init__(self, message, **kwargs)
        self.args = (message,)


class TransientError(Error):
    """Network, token endpoint or server failures that outlasted the retries; a later run may
    succeed."""

    kind = "transient"


class ConfigurationError(Error, ValueError):
    """A setting or argument is missing or wrong; the message says which, and where it came
    from."""

    kind = "configuration"


class HTTPStatusError(Error):
    """An error status, raised by :meth:`tokenwarden.Response.raise_for_status`."""

    kind = "status"
