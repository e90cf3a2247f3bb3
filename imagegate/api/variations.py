"""`POST /v1/images/variations`: OpenAI's createImageVariation (dall-e-2). A multipart form
with one `image` file (or a JSON body with the image as a URL, `data:` URL or base64) and
no prompt; read like an edit (`read_edit_input`), normalized as a variation, and then the
same task as a generation: same sync/async switch, same answers, same task object."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from imagegate.api import openapi
from imagegate.api.creation import CreationDep
from imagegate.api.deps import api_key
from imagegate.api.edits import read_edit_input
from imagegate.api.images import run_request
from imagegate.domain.normalize import normalize

router = APIRouter(tags=["images"])


@router.post("/v1/images/variations",
             openapi_extra=openapi.json_body(openapi.VARIATION_REQUEST, multipart=True,
                                             form="ImageVariationForm",
                                             examples=openapi.VARIATION_EXAMPLES, prefer=True),
             responses=openapi.responses(
                 {200: openapi.preferred(openapi.json_ok("ImageResponse", "The images")),
                  202: openapi.ACCEPTED},
                 openapi.EDIT))
async def create_variation(request: Request, run: CreationDep) -> Response:
    key = await api_key(request)
    body, refs, mask = await read_edit_input(request, run.settings)
    image_request = normalize(body, run.catalog, operation="variation", references=refs,
                              mask=mask)
    return await run_request(request, run, key, body, image_request)
