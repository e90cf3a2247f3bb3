"""The key owner's view of webhooks: the signing secret, the delivery log, manual retry.

    GET  /v1/webhooks                         {"url", "secret"} of the calling key
    GET  /v1/webhooks/deliveries              the key's deliveries, newest first
    GET  /v1/webhooks/deliveries/{id}         one delivery
    POST /v1/webhooks/deliveries/{id}/retry   requeue a failed delivery

Another key's delivery gets the same 404 as an id that never existed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from imagegate.api import openapi
from imagegate.api.deps import DispatcherDep, WebhookStoreDep, api_key
from imagegate.api.paging import DEFAULT_LIMIT, MAX_LIMIT, page_limit
from imagegate.api.responses import JSONResponse
from imagegate.errors import ConflictError, InvalidRequestError, NotFoundError
from imagegate.webhooks.sender import WebhookDispatcher
from imagegate.webhooks.store import Delivery, WebhookStore

router = APIRouter(tags=["webhooks"])



def _not_found(delivery_id: str) -> NotFoundError:
    return NotFoundError(f"No webhook delivery found with id '{delivery_id}'",
                         param="delivery_id", code="delivery_not_found")


_DELIVERY_WHY = {404: "No such delivery for this key"}
_LIST_PARAMETERS = [
    openapi.query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT}, "Deliveries per page"),
    openapi.query("after", {"type": "string"}, "A delivery id: continue with older ones"),
    openapi.query("before", {"type": "string"},
                  "A delivery id: continue with newer ones (not with after)"),
    openapi.query("task_id", {"type": "string"}, "Only this task's deliveries"),
]


@router.get("/v1/webhooks", responses=openapi.responses(
    {200: openapi.json_ok("WebhookSettings", "The key's webhook URL and signing secret")},
    openapi.KEYED))
async def webhook_settings(request: Request, store: WebhookStoreDep) -> JSONResponse:
    """The key's default URL and its signing secret, to verify `webhook-signature` with."""
    key = await api_key(request)
    url, secret = await store.key_webhook(key.id)
    return JSONResponse({"object": "webhook_settings", "url": url, "secret": secret})


@router.get("/v1/webhooks/deliveries", openapi_extra={"parameters": _LIST_PARAMETERS},
            responses=openapi.responses(
                {200: openapi.json_ok("WebhookDeliveryList", "A page of deliveries, newest "
                                      "first")},
                (400, 401, 500), why={400: "limit out of range, after and before together, "
                                           "or a cursor that is not a delivery of this key"}))
async def list_deliveries(request: Request, store: WebhookStoreDep) -> JSONResponse:
    key = await api_key(request)
    return JSONResponse(await delivery_page(store, key.id, request))


async def delivery_page(store: WebhookStore, key_id: str | None, request: Request,
                        view: Callable[[Delivery], dict[str, Any]] = Delivery.to_public
                        ) -> dict[str, Any]:
    """One page of deliveries from the query's `limit`, `after`, `before` and `task_id`:
    the key's (`key_id`) or, for the admin console, every key's (None)."""
    query = request.query_params
    limit = page_limit(query.get("limit"))
    after, before = query.get("after") or None, query.get("before") or None
    if after and before:
        raise InvalidRequestError("Pass either after or before, not both", param="before")
    rows = await store.list_for_key(key_id, limit + 1, after=after, before=before,
                                    task_id=query.get("task_id") or None)
    has_more = len(rows) > limit
    # One extra row was read to know whether there are more; it is the one beyond the page
    # in the direction of travel (the oldest going `after`, the newest going `before`).
    page = (rows[1:] if before else rows[:limit]) if has_more else rows
    data = [view(d) for d in page]
    return {
        "object": "list", "data": data, "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/v1/webhooks/deliveries/{delivery_id}", responses=openapi.responses(
    {200: openapi.json_ok("WebhookDelivery", "The delivery")}, openapi.READ,
    why=_DELIVERY_WHY))
async def get_delivery(request: Request, delivery_id: str, store: WebhookStoreDep
                       ) -> JSONResponse:
    key = await api_key(request)
    delivery = await store.get_for_key(delivery_id, key.id)
    if delivery is None:
        raise _not_found(delivery_id)
    return JSONResponse(delivery.to_public())


@router.post("/v1/webhooks/deliveries/{delivery_id}/retry", responses=openapi.responses(
    {200: openapi.json_ok("WebhookDelivery", "The delivery, queued again")},
    (401, 404, 409, 500), why={**_DELIVERY_WHY, 409: "The delivery has not failed"}))
async def retry_delivery(request: Request, delivery_id: str, store: WebhookStoreDep,
                         dispatcher: DispatcherDep) -> JSONResponse:
    """Requeue a failed delivery for a fresh round of attempts (same id, same body)."""
    key = await api_key(request)
    delivery = await requeue(store, dispatcher, delivery_id, key.id)
    return JSONResponse(delivery.to_public())


async def requeue(store: WebhookStore, dispatcher: WebhookDispatcher | None,
                  delivery_id: str, key_id: str | None) -> Delivery:
    """Requeue a failed delivery of the key (`key_id`; None: of any key, for the admin
    console); 404 when there is none, 409 when it has not failed."""

    async def find() -> Delivery | None:
        return (await store.get(delivery_id) if key_id is None
                else await store.get_for_key(delivery_id, key_id))

    if not await store.requeue(delivery_id, key_id):
        delivery = await find()
        if delivery is None:
            raise _not_found(delivery_id)
        raise ConflictError(
            f"Only a failed delivery can be retried; this one is {delivery.status}",
            param="delivery_id", code="delivery_not_failed",
        )
    if dispatcher is not None:
        dispatcher.notify()
    delivery = await find()
    if delivery is None:  # pragma: no cover - deleted between the two statements
        raise _not_found(delivery_id)
    return delivery
