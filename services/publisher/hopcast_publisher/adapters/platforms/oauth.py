"""The one OAuth 2 refresh-token grant (`refresh_oauth_tokens`), and `OAuthPlatformAdapter`, the
base of the adapters that refresh with it (LinkedIn, Mastodon, X: each names only its token
endpoint); Bluesky refreshes its own session instead. A refusal that only a new authorization
can cure raises NeedsReauth (reauth.py)."""

from __future__ import annotations

from abc import abstractmethod
from datetime import timedelta
from typing import ClassVar, Literal

import httpx

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PublishFailure, RefreshedTokens
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpPlatformAdapter, json_or_empty, now
from hopcast_publisher.adapters.platforms.reauth import NeedsReauth, oauth_refusal
from hopcast_shared.contract import PublishFailureReason


class OAuthPlatformAdapter(HttpPlatformAdapter):
    """An HTTP adapter whose tokens are refreshed by the OAuth 2 refresh-token grant at its
    token endpoint, with the app's client id and secret (from PUBLISHER_<PLATFORM>_CLIENT_*)."""

    oauth_name: ClassVar[str] = ""
    """The platform's name in failure details ("LinkedIn")."""
    client_auth: ClassVar[Literal["body", "basic"]] = "body"

    def __init__(self, *, client_id: str | None, client_secret: str | None, options: AdapterOptions | None) -> None:
        super().__init__(options)
        self._client_id = client_id
        self._client_secret = client_secret

    @abstractmethod
    def _token_url(self, account: AccountCredentials) -> str:
        """The endpoint that exchanges the account's refresh token."""

    async def _refresh(self, account: AccountCredentials) -> RefreshedTokens:
        return await refresh_oauth_tokens(
            self.client,
            self._token_url(account),
            account,
            platform=self.oauth_name,
            client_id=self._client_id,
            client_secret=self._client_secret,
            client_auth=self.client_auth,
            needs=f"PUBLISHER_{self.platform}_CLIENT_ID/SECRET",
        )


async def refresh_oauth_tokens(
    client: httpx.AsyncClient,
    token_url: str,
    account: AccountCredentials,
    *,
    platform: str,
    client_id: str | None,
    client_secret: str | None,
    client_auth: Literal["body", "basic"] = "body",
    needs: str = "",
) -> RefreshedTokens:
    """Exchange the account's refresh token at `token_url` (grant_type=refresh_token).

    The app's client id and secret go in the form (`client_auth="body"`: both are required,
    `needs` names the settings that hold them), or, for a public or confidential client, the
    id in the form and the secret as HTTP Basic when there is one (`"basic"`). Raises
    PublishFailure(TOKEN_INVALID) when refused."""
    assert account.refresh_token is not None
    form = {"grant_type": "refresh_token", "refresh_token": account.refresh_token}
    if client_auth == "body":
        if not client_id or not client_secret:
            raise PublishFailure(PublishFailureReason.TOKEN_INVALID, f"{platform} token refresh needs {needs}")
        response = await client.post(token_url, data={**form, "client_id": client_id, "client_secret": client_secret})
    else:
        auth = (client_id, client_secret) if client_id and client_secret else None
        response = await client.post(
            token_url, data={**form, "client_id": client_id or ""}, auth=auth or httpx.USE_CLIENT_DEFAULT
        )
    return oauth_tokens(response, platform)


def oauth_tokens(response: httpx.Response, platform: str) -> RefreshedTokens:
    """Tokens from an OAuth 2 token endpoint's answer (access_token, refresh_token, expires_in)."""
    body = json_or_empty(response)
    access = body.get("access_token")
    if response.status_code != 200 or not isinstance(access, str):
        detail = f"{platform} refused to refresh the token ({response.status_code})"
        reauth = oauth_refusal(response.status_code, body.get("error"))
        if reauth is not None:
            raise NeedsReauth(reauth, detail)
        raise PublishFailure(PublishFailureReason.TOKEN_INVALID, detail)
    refresh = body.get("refresh_token")
    expires_in = body.get("expires_in")
    expires_at = now() + timedelta(seconds=int(expires_in)) if isinstance(expires_in, int | float) else None
    return RefreshedTokens(access, refresh if isinstance(refresh, str) else None, expires_at)
