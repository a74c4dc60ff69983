"""The one JSON shape of every HTTP answer that is not a success:
``{"error": <short code>, "detail": <a sentence>}``, with ``fields`` (field and
problem, never the value) when a body was invalid and any extra members a refusal
names. No code or sentence ever carries content of the request."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.domain.messages import Rejected

NO_STORE = {"Cache-Control": "no-store"}


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )


def error_response(
    status: int,
    reason: str,
    detail: str,
    *,
    fields: tuple[tuple[str, str], ...] = (),
    headers: dict[str, str] | None = None,
    **extra: object,
) -> web.Response:
    payload: dict[str, object] = {"error": reason, "detail": detail, **extra}
    if fields:
        payload["fields"] = [{"field": field, "problem": problem} for field, problem in fields]
    return json_response(status, payload, headers)


def rejection_response(rejection: Rejected, headers: dict[str, str] | None = None) -> web.Response:
    return error_response(
        rejection.status,
        rejection.reason,
        rejection.detail,
        fields=rejection.fields,
        headers={**(headers or {}), **rejection.headers} or None,
        **rejection.extra,
    )
