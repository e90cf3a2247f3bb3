"""The admin API of content moderation (`/admin/moderation...`, the admin token): what the
lists are, replacing the global list kept in the database, reloading every list without a
restart, refusal counts, and whether a prompt would be refused. A key's own list and its
`allow_low_moderation` are key settings (`PATCH /admin/keys/{key_id}`, admin.py)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Depends, Request

from imagegate.accounts.key_fields import normalize_blocklist
from imagegate.accounts.usage import check_range
from imagegate.accounts.when import iso, parse_when
from imagegate.api.admin_auth import require_admin
from imagegate.api.deps import KeysDep, ModerationDep, ModerationStoreDep, json_body
from imagegate.api.responses import JSONResponse
from imagegate.errors import InvalidRequestError
from imagegate.moderation.blocklist import BlocklistError, parse_entries
from imagegate.moderation.sources import BlocklistSourceError

router = APIRouter(prefix="/admin/moderation", tags=["admin"],
                   dependencies=[Depends(require_admin)], include_in_schema=False)

# The longest prompt of any model of the default catalog: a test prompt is never longer.
MAX_PROMPT_CHARS = 32_000


def check_entries(entries: object, param: str) -> tuple[str, ...]:
    """A blocklist from a request body: its shape (key_fields) and every entry usable."""
    checked = normalize_blocklist(entries, param) or ()
    try:
        parse_entries(checked, "admin")
    except BlocklistError as exc:
        raise InvalidRequestError(f"{param}[{exc.index}]: {exc.message}",
                                  param=f"{param}[{exc.index}]",
                                  code="invalid_blocklist_entry") from None
    return checked


def _reload_failed(exc: Exception) -> InvalidRequestError:
    return InvalidRequestError(f"The moderation lists were not reloaded (the previous ones "
                               f"stay in force): {exc}", code="invalid_blocklist")


@router.get("")
async def describe(moderation: ModerationDep) -> JSONResponse:
    return JSONResponse(moderation.describe())


@router.put("/blocklist")
async def replace_blocklist(request: Request, moderation: ModerationDep) -> JSONResponse:
    """`{"entries": [...]}` replaces the global list kept in the database (the config's and
    the file's entries are not touched) and reloads every list."""
    body = await json_body(request)
    if set(body) != {"entries"}:
        raise InvalidRequestError('The body must be {"entries": [...]}', param="entries")
    entries: Sequence[str] = check_entries(body["entries"], "entries")
    try:
        await moderation.replace_global(entries)
    except (BlocklistSourceError, ValueError) as exc:
        raise _reload_failed(exc) from None
    return JSONResponse(moderation.describe())


@router.post("/reload")
async def reload(moderation: ModerationDep) -> JSONResponse:
    """Read the config file's entries, the blocklist file and the database list again (what
    SIGHUP does)."""
    try:
        await moderation.reload()
    except (BlocklistSourceError, ValueError) as exc:
        raise _reload_failed(exc) from None
    return JSONResponse(moderation.describe())


@router.get("/refusals")
async def refusals(store: ModerationStoreDep, since: str | None = None,
                   until: str | None = None, key_id: str | None = None) -> JSONResponse:
    start, end = check_range(None if since is None else parse_when(since, param="since"),
                             None if until is None else parse_when(until, param="until"))
    rows = await store.refusal_counts(start, end, key_id)
    return JSONResponse({"object": "list", "since": iso(start), "until": iso(end),
                         "total": sum(r.refused for r in rows),
                         "data": [r.to_json() for r in rows]})


@router.post("/test")
async def test_prompt(request: Request, moderation: ModerationDep, keys: KeysDep
                      ) -> JSONResponse:
    """`{"prompt", "key_id"?, "moderation"?}`: whether and why the prompt would be refused
    (the blocklists, then the model on the text); nothing is recorded."""
    body = await json_body(request)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequestError(f"prompt must be a text of at most {MAX_PROMPT_CHARS} "
                                  "characters", param="prompt")
    key_id = body.get("key_id")
    key = None if key_id is None else await keys.require(str(key_id))
    mode = body.get("moderation", "auto")
    if mode not in ("auto", "low"):
        raise InvalidRequestError("moderation must be auto or low", param="moderation")
    return JSONResponse(await moderation.explain(prompt, key, mode))
