"""The admin API (`/admin/...`): keys, usage reports and every key's webhook deliveries, for
operators holding the admin token.

Every route depends on `require_admin`, which runs before the body is read: a request without
the token (401) or with a wrong one (403) changes nothing. Amounts are decimal strings or
numbers in the configured currency ("10.50"); responses spell them as strings, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request

from imagegate.accounts.key_fields import UNSET, Unset, key_json
from imagegate.accounts.keys import KeyStore
from imagegate.accounts.money import parse_amount
from imagegate.accounts.usage import check_range
from imagegate.accounts.when import iso, parse_when
from imagegate.api.admin_auth import require_admin
from imagegate.api.deps import (
    CatalogDep,
    DispatcherDep,
    KeysDep,
    SettingsDep,
    UsageDep,
    WebhookStoreDep,
    json_body,
)
from imagegate.api.moderation import check_entries
from imagegate.api.responses import JSONResponse
from imagegate.api.tasks import task_page
from imagegate.api.webhooks import delivery_page, requeue
from imagegate.config import Settings
from imagegate.domain.catalog import Catalog
from imagegate.errors import InvalidRequestError
from imagegate.net.guard import AddressPolicy
from imagegate.net.urls import validate_webhook_url
from imagegate.webhooks.store import Delivery

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   include_in_schema=False)

_SETTINGS = ("name", "models", "rpm", "concurrency", "expires_at", "webhook_url",
             "moderation_blocklist", "allow_low_moderation", "webhook_events")
_CREATE = (*_SETTINGS, "balance")


def _only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    # A misspelt field ("rate_limit") silently ignored would leave a key without its limit.
    for name in body:
        if name not in allowed:
            raise InvalidRequestError(f"Unknown field {name!r}; expected one of "
                                      f"{', '.join(allowed)}", param=name)


def _settings(catalog: Catalog, settings: Settings, body: Mapping[str, Any]
              ) -> dict[str, Any]:
    """The key settings present in `body`, checked against the catalog and the SSRF policy;
    absent ones are UNSET (kept), nulls clear."""
    out: dict[str, Any] = {name: body.get(name, UNSET) for name in _SETTINGS}
    models = out["models"]
    if isinstance(models, list):
        unknown = [m for m in models if not isinstance(m, str) or catalog.get(m) is None]
        if unknown:
            raise InvalidRequestError(f"Unknown model(s): {', '.join(map(str, unknown))}; see "
                                      "GET /v1/models", param="models", code="model_not_found")
    elif not isinstance(models, Unset | None):
        raise InvalidRequestError("models must be a list of model names or null",
                                  param="models")
    if not isinstance(out["expires_at"], Unset | None):
        out["expires_at"] = parse_when(out["expires_at"], param="expires_at")
    if not isinstance(out["webhook_url"], Unset | None):
        policy = AddressPolicy.from_config(settings.fetch_allow_hosts,
                                           settings.fetch_allow_networks)
        out["webhook_url"] = validate_webhook_url(out["webhook_url"], policy)
    if not isinstance(out["moderation_blocklist"], Unset | None):
        out["moderation_blocklist"] = check_entries(out["moderation_blocklist"],
                                                    "moderation_blocklist")
    return out


async def _with_secret(keys: KeyStore, key_id: str, view: dict[str, Any]) -> dict[str, Any]:
    return {**view, "webhook_secret": await keys.webhook_secret(key_id)}


@router.post("/keys")
async def create_key(request: Request, keys: KeysDep, catalog: CatalogDep,
                     settings: SettingsDep) -> JSONResponse:
    body = await json_body(request)
    _only(body, _CREATE)
    if not isinstance(body.get("name"), str):
        raise InvalidRequestError("name is required (a label for the key)", param="name")
    fields = {k: v for k, v in _settings(catalog, settings, body).items()
              if not isinstance(v, Unset)}
    raw_balance = body.get("balance")
    balance = None if raw_balance is None else parse_amount(raw_balance, param="balance")
    plaintext, key = await keys.create(fields.pop("name"), balance=balance, **fields)
    view = await _with_secret(keys, key.id, key_json(key))
    # The plaintext is in this response only: it is stored as a hash.
    return JSONResponse({**view, "key": plaintext}, status_code=201)


@router.get("/keys")
async def list_keys(keys: KeysDep) -> JSONResponse:
    return JSONResponse({"object": "list", "data": [key_json(k) for k in await keys.list()]})


@router.get("/keys/{key_id}")
async def get_key(key_id: str, keys: KeysDep) -> JSONResponse:
    key = await keys.require(key_id)
    return JSONResponse(await _with_secret(keys, key.id, key_json(key)))


@router.patch("/keys/{key_id}")
async def update_key(request: Request, key_id: str, keys: KeysDep, catalog: CatalogDep,
                     settings: SettingsDep) -> JSONResponse:
    body = await json_body(request)
    _only(body, _SETTINGS)
    key = await keys.update(key_id, **_settings(catalog, settings, body))
    return JSONResponse(key_json(key))


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, keys: KeysDep) -> JSONResponse:
    return JSONResponse(key_json(await keys.revoke(key_id)))


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, keys: KeysDep) -> JSONResponse:
    plaintext, key = await keys.rotate(key_id)
    return JSONResponse({**key_json(key), "key": plaintext})


def _note(body: Mapping[str, Any], required: bool) -> str | None:
    note = body.get("note")
    if note is None and not required:
        return None
    if not isinstance(note, str) or not note.strip() or len(note) > 500:
        raise InvalidRequestError("note must be a text of 1 to 500 characters", param="note")
    return note.strip()


async def _movement(request: Request, *, signed: bool) -> tuple[int, str | None]:
    """The `{amount, note}` body of a balance movement, checked before anything changes."""
    body = await json_body(request)
    _only(body, ("amount", "note"))
    if "amount" not in body:
        raise InvalidRequestError("amount is required", param="amount")
    amount = parse_amount(body["amount"], signed=signed)
    return amount, _note(body, required=signed)


@router.post("/keys/{key_id}/topup")
async def topup_key(request: Request, key_id: str, keys: KeysDep) -> JSONResponse:
    amount, note = await _movement(request, signed=False)
    return JSONResponse(key_json(await keys.topup(key_id, amount, note)))


@router.post("/keys/{key_id}/adjust")
async def adjust_key(request: Request, key_id: str, keys: KeysDep) -> JSONResponse:
    """A correction of either sign, with a mandatory note (it is the only explanation)."""
    amount, note = await _movement(request, signed=True)
    return JSONResponse(key_json(await keys.adjust(key_id, amount, note)))


@router.get("/usage")
async def usage_report(usage: UsageDep, since: str | None = None, until: str | None = None,
                       key_id: str | None = None, model: str | None = None) -> JSONResponse:
    start, end = check_range(None if since is None else parse_when(since, param="since"),
                             None if until is None else parse_when(until, param="until"))
    rows = await usage.report(start, end, key_id=key_id, model=model)
    return JSONResponse({"object": "list", "currency": usage.currency,
                         "since": iso(start), "until": iso(end),
                         "data": [r.to_json() for r in rows]})


@router.get("/tasks")
async def list_all_tasks(request: Request) -> JSONResponse:
    """Every key's tasks, newest first: `GET /v1/tasks`'s filters and paging, plus
    `key_id` (then `after` must be a task of that key)."""
    return await task_page(request, request.query_params.get("key_id") or None)


def _delivery(d: Delivery) -> dict[str, Any]:
    # The owner's view plus whose it is: the console lists every key's deliveries.
    return {**d.to_public(), "key_id": d.key_id}


@router.get("/webhooks/deliveries")
async def list_deliveries(request: Request, store: WebhookStoreDep) -> JSONResponse:
    """Every key's deliveries, newest first; `key_id` narrows to one key, and `limit`,
    `after`, `before` and `task_id` work as on `GET /v1/webhooks/deliveries`."""
    key_id = request.query_params.get("key_id") or None
    return JSONResponse(await delivery_page(store, key_id, request, _delivery))


@router.post("/webhooks/deliveries/{delivery_id}/retry")
async def retry_delivery(delivery_id: str, store: WebhookStoreDep,
                         dispatcher: DispatcherDep) -> JSONResponse:
    """Requeue any key's failed delivery (409 when it has not failed)."""
    return JSONResponse(_delivery(await requeue(store, dispatcher, delivery_id, None)))
