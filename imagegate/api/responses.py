"""The JSON response class of every route: orjson-encoded (several times faster than the
stdlib encoder for task objects, which matters on the polling path)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    """A JSON response class FastAPI recognises as one, so its OpenAPI output describes the
    routes' bodies by the schemas they declare (`api/openapi.py`) rather than as text."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
