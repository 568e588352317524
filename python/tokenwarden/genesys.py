"""The official Genesys Cloud SDK (``PureCloudPlatformClientV2``) with managed tokens.

The SDK never refreshes client-credentials tokens and raises on the first ``401``.
:func:`authorize` makes an existing ``ApiClient`` take its token from a :class:`tokenwarden.Auth`
before every call and heal one ``401``. The SDK is an optional dependency
(``pip install 'tokenwarden[genesys]'``), imported only when :func:`authorize` is called.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, TypeVar

from ._auth import Auth, TokenwardenWarning

__all__ = ["authorize"]

T = TypeVar("T")

# The host an ApiClient gets when none is given (us-east-1).
_SDK_DEFAULT_HOST = "https://api.mypurecloud.com"


def authorize(api_client: T, auth: Auth) -> T:
    """Makes ``api_client`` (a ``PureCloudPlatformClientV2.ApiClient``) use ``auth``'s token for
    every call, and returns it.

    Before each call the current token is set (a fresh one when the old one is due: the SDK's
    own ``access_token`` is never left to expire). A call answered ``401`` reports the token it
    carried (:meth:`Auth.rejected`) and is made once more with the new token (a ``401`` proves
    the API did nothing, so this is safe for every method); a second ``401`` raises the SDK's
    ``ApiException`` as usual. A ``403`` is raised at once: a new token does not cure it. Works
    from many threads, and with the SDK's ``callback=`` (thread) calls.

    If the client still has the SDK's default host and ``auth`` is for another API, the host is
    set to ``auth.api_base`` (the region of ``Auth.from_env``).

    Example::

        import PureCloudPlatformClientV2 as gc
        api = tokenwarden.genesys.authorize(gc.ApiClient(), tokenwarden.Auth.from_env())
        users = gc.UsersApi(api).get_users(page_size=100)
    """
    from PureCloudPlatformClientV2.rest import ApiException

    if getattr(api_client, "_tokenwarden_auth", None) is not None:
        api_client._tokenwarden_auth = auth
        return api_client

    host = getattr(api_client, "host", None)
    if host != auth.api_base:
        if host in (None, _SDK_DEFAULT_HOST):
            api_client.host = auth.api_base
        else:
            warnings.warn(
                f"tokenwarden.genesys.authorize: the ApiClient's host {host} is not the API "
                f"the token is for ({auth.api_base})",
                TokenwardenWarning,
                stacklevel=2,
            )

    # The token each thread's current call carries (the SDK reads `access_token` per call,
    # and other threads may change it meanwhile).
    local = threading.local()
    api_client._tokenwarden_auth = auth
    call = getattr(api_client, "_ApiClient__call_api")
    update = api_client.update_params_for_auth

    def update_params_for_auth(headers: Any, querys: Any, auth_settings: Any) -> None:
        update(headers, querys, auth_settings)
        token = getattr(local, "token", None)
        if token is not None and "Authorization" in headers:
            headers["Authorization"] = "Bearer " + token

    def call_api(*args: Any, **kwargs: Any) -> Any:
        managed = api_client._tokenwarden_auth
        token = managed.token()
        heals = 0
        try:
            while True:
                local.token = token
                api_client.access_token = token
                try:
                    result = call(*args, **kwargs)
                except ApiException as e:
                    # The library's rule, as for requests and httpx: one heal, and more (up to
                    # MAX_HEALS) only while each fresh token was accepted and then revoked
                    # meanwhile (other threads' calls ran on it).
                    if e.status == 401 and managed._heal(heals, token):
                        token = managed.rejected(token)
                        heals += 1
                        continue
                    if e.status != 401:
                        managed._core.accepted(token)
                    raise
                managed._core.accepted(token)
                return result
        finally:
            local.token = None

    api_client.update_params_for_auth = update_params_for_auth
    # The SDK's call_api (and its callback= thread) both go through this name-mangled method.
    setattr(api_client, "_ApiClient__call_api", call_api)
    return api_client
