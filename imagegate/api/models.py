"""`GET /v1/models`: the models this key may use (served here and allowed for the key), with
their capabilities and prices, in OpenAI's list shape."""

from __future__ import annotations

from fastapi import APIRouter, Request

from imagegate.api import openapi
from imagegate.api.deps import CatalogDep, ProvidersDep, api_key
from imagegate.api.responses import JSONResponse

router = APIRouter(tags=["models"])


@router.get("/v1/models", responses=openapi.responses(
    {200: openapi.json_ok("ModelList", "The models this key may use")}, openapi.KEYED))
async def list_models(request: Request, catalog: CatalogDep, providers: ProvidersDep
                      ) -> JSONResponse:
    key = await api_key(request)
    served_by = providers.describe()
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
        for spec in catalog.models.values()
        if providers.serves(spec.name)
        and (key.allowed_models is None or spec.name in key.allowed_models)
    ]
    return JSONResponse({"object": "list", "data": data})
