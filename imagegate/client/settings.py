"""Where the connection comes from when the caller does not say: `$IMAGEGATE_URL` and
`$IMAGEGATE_API_KEY`, else the local server's default address. (Named profiles are read by
profiles.py.)"""

from __future__ import annotations

import os

DEFAULT_URL = "http://127.0.0.1:8000"
# Every variable the client and its commands read. They share the server's `IMAGEGATE_`
# prefix but are no server settings (the server ignores them).
URL_ENV, KEY_ENV = "IMAGEGATE_URL", "IMAGEGATE_API_KEY"
PROFILE_ENV, CONFIG_ENV = "IMAGEGATE_PROFILE", "IMAGEGATE_CLIENT_CONFIG"
ENVIRONMENT = (URL_ENV, KEY_ENV, PROFILE_ENV, CONFIG_ENV)


def resolve(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    url = base_url or os.environ.get(URL_ENV) or DEFAULT_URL
    key = api_key if api_key is not None else os.environ.get(KEY_ENV) or None
    return url, key
