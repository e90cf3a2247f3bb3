"""The docs stay true to the code (after Datasette's `test_docs.py`): every setting, route,
default model and error class is documented, nothing documented is stale, and the numbers
the docs quote (setting defaults, per-model limits, error statuses) match the code."""

from __future__ import annotations

import inspect
import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from imagegate import errors
from imagegate.app import build_app
from imagegate.client.settings import ENVIRONMENT as CLIENT_ENVIRONMENT
from imagegate.config import Settings
from imagegate.domain.catalog import load_catalog, parse_catalog
from imagegate.domain.sizes import TIERS

DOCS = Path(__file__).resolve().parent.parent / "docs"
FIELDS = Settings.model_fields
# FastAPI's own pages and the liveness probe are not part of the documented API surface.
UNDOCUMENTED_ROUTES = {"/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect",
                       "/docs/static/{name}", "/healthz"}


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def table_rows(text: str, heading: str) -> list[dict[str, str]]:
    """The Markdown table that follows `heading`, as one dict per row keyed by column title."""
    lines = text.splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    header, _rule, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


def code_span(cell: str) -> str:
    """The first `code` span of a table cell ('' when there is none)."""
    m = re.search(r"`([^`]*)`", cell)
    return m.group(1) if m else ""


# -- (a) settings ----------------------------------------------------------------------------

def settings_rows() -> dict[str, dict[str, str]]:
    rows = table_rows(doc("configuration.md"), "## All settings")
    return {code_span(r["setting"]): r for r in rows}


@pytest.mark.parametrize("name", list(FIELDS))
def test_every_setting_is_documented(name: str) -> None:
    text = doc("configuration.md")
    env = f"IMAGEGATE_{name.upper()}"
    assert f"`{name}`" in text, f"setting {name} is missing from docs/configuration.md"
    assert env in text, f"{env} is missing from docs/configuration.md"
    row = settings_rows().get(name)
    assert row is not None, f"setting {name} has no row in the settings table"
    assert code_span(row["environment variable"]) == env


def _default_text(value: Any) -> str | None:
    """How a default is written in the table, or None when the table describes it in words."""
    if value is None or isinstance(value, SecretStr):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | dict):  # as in the environment: JSON
        return json.dumps(value)
    return str(value)


@pytest.mark.parametrize("name", list(FIELDS))
def test_documented_defaults_match(name: str) -> None:
    expected = _default_text(FIELDS[name].default)
    if expected is None:
        return
    row = settings_rows().get(name)
    assert row is not None, f"setting {name} has no row in the settings table"
    assert code_span(row["default"]).removeprefix("./") == expected, (
        f"docs/configuration.md gives {name} the default {row['default']!r}; the code says "
        f"{expected!r}"
    )


def test_no_stale_settings() -> None:
    for name in settings_rows():
        assert name in FIELDS, f"docs/configuration.md documents {name!r}, which is no setting"
    known = {f"IMAGEGATE_{n.upper()}" for n in FIELDS} | {"IMAGEGATE_CONFIG"} \
        | set(CLIENT_ENVIRONMENT)  # the client's own (docs/client.md), no server settings
    for page in DOCS.glob("*.md"):
        mentioned = set(re.findall(r"IMAGEGATE_[A-Z0-9_]*[A-Z0-9]", doc(page.name)))
        assert mentioned <= known, f"{page.name} names unknown variables {mentioned - known}"


# -- (b) routes ------------------------------------------------------------------------------

def route_paths(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, looking inside included routers.

    Newer FastAPI versions keep `include_router()` as a lazy `_IncludedRouter` entry holding
    the original router and its prefix, instead of copying the routes into `app.routes`.
    """
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                if method != "HEAD":
                    yield method, prefix + path
            continue
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from route_paths(inner.routes, prefix + getattr(context, "prefix", ""))


def app_routes() -> set[tuple[str, str]]:
    defaults: dict[str, Any] = {}  # mypy does not see defaults given as Field(default, ...)
    app = build_app(Settings(**defaults))
    found = set(route_paths(app.routes))
    # The walker must see at least what the OpenAPI schema sees, or it is silently blind.
    assert set(app.openapi()["paths"]) <= {p for _, p in found}
    return {(m, p) for m, p in found if p not in UNDOCUMENTED_ROUTES}


@pytest.mark.parametrize("method_path", sorted(app_routes()), ids=" ".join)
def test_every_route_is_documented(method_path: tuple[str, str]) -> None:
    method, path = method_path
    text = doc("api.md")
    assert path in text, f"{path} is missing from docs/api.md"
    assert f"{method} {path}" in text, f"'{method} {path}' is missing from docs/api.md"


# -- (c) models ------------------------------------------------------------------------------

CATALOG = load_catalog()


def model_rows() -> dict[str, dict[str, str]]:
    rows = table_rows(doc("sizes.md"), "### The default models")
    return {code_span(r["model"]): r for r in rows}


@pytest.mark.parametrize("name", CATALOG.names())
def test_every_default_model_is_documented_with_its_limits(name: str) -> None:
    assert f"`{name}`" in doc("sizes.md"), f"model {name} is missing from docs/sizes.md"
    spec = CATALOG.models[name]
    row = model_rows().get(name)
    assert row is not None, f"model {name} has no row in the default models table"
    yes_no = {True: "yes", False: "no"}
    assert row["`n` max (1k / 2k / 4k)"] == " / ".join(
        str(spec.n_max.get(t, "—")) for t in TIERS
    )
    assert row["max refs"] == str(spec.max_references)
    assert row["max prompt chars"] == str(spec.max_prompt_chars)
    assert row["transparent"] == yes_no[spec.transparent_background]
    assert row["edits"] == yes_no[spec.edits]
    assert row["variations"] == yes_no[spec.variations]
    assert row["family"] == spec.family
    assert row["qualities"] == ", ".join(spec.qualities)
    assert row["`auto` makes"] == spec.auto_quality
    assert row["streams"] == yes_no[spec.streaming]
    assert row["revised prompt"] == yes_no[spec.revised_prompt]
    assert row["formats"] == ", ".join(spec.output_formats)
    if spec.sizes:
        assert row["sizes"] == ", ".join(spec.sizes)


def test_no_stale_models() -> None:
    assert set(model_rows()) <= set(CATALOG.names())
    assert f"The default model is `{CATALOG.default_model}`" in doc("sizes.md")


# -- (d) errors ------------------------------------------------------------------------------

ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.ImagegateError) and cls.__module__ == errors.__name__
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_is_documented(cls: type[errors.ImagegateError]) -> None:
    rows = {code_span(r["error class"]): r for r in
            table_rows(doc("api.md"), "### Statuses and types")}
    row = rows.get(cls.__name__)
    assert row is not None, f"{cls.__name__} is missing from the error table in docs/api.md"
    assert row["status"] == str(cls.status_code)
    assert code_span(row["`type`"]) == cls.error_type
    assert code_span(row["default `code`"]) == (cls.default_code or "")


# -- (e) limits on client input ---------------------------------------------------------------

def _limit_rows() -> dict[str, int | str | None]:
    """Each row of the Limits table of docs/api.md → the cap the code enforces: a number,
    the setting that holds it, or None where the row describes it in words."""
    from imagegate.accounts.idempotency import MAX_KEY_LENGTH
    from imagegate.api import multipart, webhooks
    from imagegate.api.profiles.apimart import MAX_BATCH
    from imagegate.domain import limits
    from imagegate.ingest import MAX_DATA_URL_HEADER_CHARS
    from imagegate.net.urls import MAX_URL_LENGTH

    parts = multipart.MultipartLimits()
    rows: dict[str, int | str | None] = {f"`{k}`": v for k, v in limits.FIELD_CHARS.items()}
    rows.update({
        "`prompt`": None,  # per model: the models table of sizes.md checks those numbers
        "`webhook_url`": MAX_URL_LENGTH,
        "a reference image or mask given as an http(s) URL": limits.REFERENCE_URL_CHARS,
        "the header of a `data:` URL (before its `,`)": MAX_DATA_URL_HEADER_CHARS,
        "a reference image or mask given as a `data:` URL or base64": "max_reference_bytes",
        "unknown fields: names recorded with the task": limits.IGNORED_FIELDS,
        "unknown fields: characters kept of each recorded name": limits.IGNORED_FIELD_CHARS,
        "`Idempotency-Key` header": MAX_KEY_LENGTH,
        "multipart: one text field": parts.max_field_bytes,
        "multipart: text fields": parts.max_fields,
        "multipart: files": parts.max_files,
        "multipart: headers of one part": multipart.MAX_PART_HEADERS,
        "multipart: one header line of a part": multipart.MAX_PART_HEADER_BYTES,
        "multipart: a part's name": multipart.MAX_PART_NAME_CHARS,
        "multipart: a file name": multipart.MAX_FILE_NAME_CHARS,
        "multipart: the boundary": multipart._MAX_BOUNDARY,
        "a JSON body": "max_json_body_bytes",
        "any body": "max_body_bytes",
        "`task_ids` of `POST /apimart/v1/tasks/batch`": MAX_BATCH,
        "`limit` of `GET /v1/webhooks/deliveries`": webhooks.MAX_LIMIT,
        "body and reference-image bytes all requests of a process hold at once":
            "max_inflight_body_bytes",
    })
    return rows


def test_limits_table_matches_the_code() -> None:
    documented = {r["input"]: r["cap"] for r in table_rows(doc("api.md"), "## Limits")}
    expected = _limit_rows()
    assert set(documented) == set(expected), (
        f"docs/api.md Limits: rows without a cap in the code {set(documented) - set(expected)}, "
        f"caps without a row {set(expected) - set(documented)}")
    for name, cap in expected.items():
        cell = documented[name]
        if isinstance(cap, int):
            number = re.match(r"[0-9][0-9,]*", cell)
            assert number is not None and int(number[0].replace(",", "")) == cap, (
                f"docs/api.md gives {name} the cap {cell!r}; the code says {cap}")
        elif isinstance(cap, str):
            assert cap in FIELDS and code_span(cell) == cap, f"{name}: {cell!r} is not `{cap}`"


# -- the pages hang together -----------------------------------------------------------------

def test_index_lists_every_page() -> None:
    index = doc("README.md")
    for page in DOCS.glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_relative_links_resolve(page: str) -> None:
    for target, anchor in re.findall(r"\]\(([\w.\-]+\.md)(?:#([\w\-]+))?\)", doc(page)):
        assert (DOCS / target).is_file(), f"{page} links to missing {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", doc(target), flags=re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, f"{page}: no #{anchor} in {target}"


def toml_blocks(page: str) -> list[dict[str, Any]]:
    return [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", doc(page), re.DOTALL)]


def test_toml_examples_are_valid() -> None:
    """The example settings file loads, and the example catalog parses."""
    (settings_example,) = toml_blocks("configuration.md")
    Settings(**settings_example)
    (catalog_example,) = toml_blocks("sizes.md")
    parse_catalog(catalog_example)


# -- (f) architecture --------------------------------------------------------------------------

def _named_paths(text: str) -> list[tuple[str, str | None]]:
    """Every `path` (or `path: Name` / `path (names)`) in code spans that names a file or
    folder of the project, with the symbol after a colon when one is given."""
    found = []
    for span in re.findall(r"`([^`]+)`", text):
        path, _, symbol = span.partition(": ")
        if path.startswith(("imagegate/", "tests/", "docs/", "bench/")):
            found.append((path, symbol.split(".")[0] or None))
    return found


def test_architecture_names_only_paths_that_exist() -> None:
    root = DOCS.parent
    named = _named_paths(doc("architecture.md"))
    assert len(named) > 40  # the page is about the code: it names a lot of it
    for path, symbol in named:
        target = root / path
        assert target.exists(), f"docs/architecture.md names {path}, which does not exist"
        if symbol and target.is_file():
            assert re.search(rf"\b(class|def|async def) {re.escape(symbol)}\b|^{symbol} ",
                             target.read_text(), re.MULTILINE), f"{path} has no {symbol}"


def test_architecture_layers_match_the_import_test() -> None:
    from tests.test_architecture import LAYERS

    rows = table_rows(doc("architecture.md"), "## Layers")
    documented = {name: int(row["layer"]) for row in rows
                  for name in re.findall(r"`([^`]+)`", row["modules"])}
    documented["__init__"] = documented.pop("imagegate")
    assert documented == {k: v for k, v in LAYERS.items() if k != "__main__"}
