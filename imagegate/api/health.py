"""Probes for load balancers and orchestrators: `/healthz` (liveness: the process answers)
and `/readyz` (readiness: the database, the blob store and, when configured, Redis answer).

A process whose `/readyz` fails should be taken out of rotation, not restarted: the cause is
usually a shared backend, and a restart would not fix it. Neither probe needs credentials,
and neither says more than each check's name and a one-line reason (no URLs with secrets:
the backends word their own errors without them).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from imagegate.api.deps import ChecksDep
from imagegate.api.responses import JSONResponse
from imagegate.errors import BackendUnavailableError

router = APIRouter(tags=["health"])

# One check that hangs must not hang the probe: every check is cut off after this long.
CHECK_TIMEOUT = 5.0


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


# A plain Starlette route, also served ahead of the app's whole stack (HotRoutesMiddleware):
# probes come all day from every load balancer.
router.add_route("/healthz", healthz, methods=["GET", "HEAD"], include_in_schema=False)
HOT_ROUTES = {"/healthz": healthz}


async def _run(check: Any) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    except BackendUnavailableError as exc:
        return exc.message
    except Exception as exc:  # a probe answers, whatever the backend raised
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return "ok"


@router.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
async def readyz(checks: ChecksDep) -> JSONResponse:
    names = list(checks)
    results = await asyncio.gather(*(_run(checks[name]) for name in names))
    outcome = dict(zip(names, results, strict=True))
    ready = all(r == "ok" for r in results)
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": outcome},
                        status_code=200 if ready else 503)
