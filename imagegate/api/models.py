"""`GET /v1/models`: the catalog's models with their capabilities, in OpenAI's list shape."""

from __future__ import annotations

from fastapi import APIRouter, Request

from imagegate.api.deps import api_key, services
from imagegate.api.responses import JSONResponse

router = APIRouter(tags=["models"])


@router.get("/v1/models")
async def list_models(request: Request) -> JSONResponse:
    await api_key(request)
    svc = services(request)
    served_by = svc.providers.describe()
    data = [
        {
            "id": spec.name,
            "object": "model",
            "created": 0,
            "owned_by": "imagegate",
            "description": spec.description,
            "provider": served_by.get(spec.name),
            "capabilities": spec.to_public(),
        }
        for spec in svc.catalog.models.values()
    ]
    return JSONResponse({"object": "list", "data": data})
