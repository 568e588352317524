"""tokenwarden: OAuth 2.0 access tokens that never expire in the middle of a job.

The tokenwarden Rust core, in-process: tokens are refreshed before they expire on background
threads, one token request at a time however many threads and tasks ask; a ``401`` is healed
once, keyed on the refused token; ``429`` waits and learned pacing keep many workers under the
API's limit. Genesys Cloud CX settings (regions, the gc CLI's profiles) are understood.

- :class:`Auth`: the token, as ``auth=`` for requests and httpx, or ``auth.token()``.
- :class:`Client`, :class:`AsyncClient`: requests with every retry rule, and ``paginate``.
- :func:`tokenwarden.genesys.authorize`: the official Genesys SDK with managed tokens.
- :mod:`tokenwarden.errors`: the exceptions, all subclasses of :class:`Error`.
"""

from ._auth import Auth, TokenwardenWarning
from ._client import AsyncClient, Client, Response
from ._tokenwarden import __version__
from .errors import (
    ConfigurationError,
    CredentialsError,
    Error,
    ForbiddenError,
    HTTPStatusError,
    TransientError,
)

__all__ = [
    "Auth",
    "Client",
    "AsyncClient",
    "Response",
    "Error",
    "CredentialsError",
    "ForbiddenError",
    "TransientError",
    "ConfigurationError",
    "HTTPStatusError",
    "TokenwardenWarning",
    "__version__",
]


def __getattr__(name: str):
    # `tokenwarden.genesys` without importing it (or the SDK) up front.
    if name == "genesys":
        import importlib

        return importlib.import_module(".genesys", __name__)
    raise AttributeError(f"module 'tokenwarden' has no attribute {name!r}")
