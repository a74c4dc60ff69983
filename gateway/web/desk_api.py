"""The desk's JSON API under /api/v1/, with its OpenAPI document.

Signing in, sessions and the second factor are `desk_auth`'s. Every call here acts
for the signed-in person's own team and role: another team's conversation is 403,
no session 401, a role without the right 403 `not_permitted`. Every call that
touches conversations or the access log writes exactly one access-log record: the
action's own (in its transaction), or the refusal's.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from gateway.config.live import LiveConfig
from gateway.config.models import ANSWER_PLACEHOLDERS, CODE_PATTERN, NATIONAL, StandardAnswer
from gateway.domain.answers import TeamAnswer, answers_for, placeholder_values, team_name, teams
from gateway.domain.envelope import MAX_TEXT_CHARS
from gateway.domain.identity import ACTIONS, Action, permitted
from gateway.domain.messages import PublishError, Rejected, decode_json
from gateway.roles.answers import ConsoleAnswers
from gateway.roles.desk import Conversation, Desk
from gateway.roles.identity import Identities
from gateway.roles.reports import Reports
from gateway.store.identity import AuditEvent, AuditQuery
from gateway.support.keys import Keyring
from gateway.web import reports_api
from gateway.web.app import LIVE_KEY, STORE_KEY
from gateway.web.desk_auth import (
    AUTH_KEY,
    COOKIE,
    Who,
    add_auth_routes,
    answer,
    audit_refusal,
    parse_time,
    read_body,
    refused,
)
from gateway.web.errors import NO_STORE, error_response

log = structlog.get_logger("gateway.desk_api")

DESK_KEY = web.AppKey("desk", Desk)
LABELS_KEY: web.AppKey[dict[str, str]] = web.AppKey("channel_labels")
ANSWERS_KEY = web.AppKey("console_answers", ConsoleAnswers)
KEEP_ALIVE_SECONDS = 15.0
AUDIT_LIMIT = 1000


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class _Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class _Reveal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Literal["call_back", "report", "other"] = Field(description="Why the contact is needed")


ANSWER_TITLE_CHARS = 100
_Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ANSWER_TITLE_CHARS)]
_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)]


class _AnswerBody(BaseModel):
    """A standard answer as the console sends it; the id is the path's. Beyond this shape
    it is checked as a file answer is (`StandardAnswer`): Dutch required, the placeholders."""

    model_config = ConfigDict(extra="forbid")
    title: dict[Literal["nl", "en"], _Title]
    text: dict[Literal["nl", "en"], _Text]


class _Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str = Field(min_length=1, max_length=80)
    reason: str = Field(min_length=1, max_length=500)


Handler = Callable[[web.Request, Who, Desk], Awaitable[web.StreamResponse]]


def _action(
    handler: Handler, action: Action | None, *, changes: bool = False
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        auth = request.app[AUTH_KEY]
        try:
            who = await auth.who(request)
        except Rejected as refusal:
            return refused(refusal)
        conversation_id = request.match_info.get("conversation_id")
        if conversation_id is not None and not CONVERSATION_ID.fullmatch(conversation_id):
            # Never made by the gateway; and PostgreSQL refuses text with NUL in it.
            unknown = Rejected(404, "unknown_conversation", "no conversation with this id")
            return await _refusal(auth.identities, who, action, unknown, None)
        try:
            auth.require_full(who)
            if action is not None and not permitted(who.identity.role, action):
                raise Rejected(403, "not_permitted", "your role does not allow this")
            if changes:
                auth.check_csrf(who, request)
            return await handler(request, who, request.app[DESK_KEY])
        except Rejected as refusal:
            return await _refusal(auth.identities, who, action, refusal, conversation_id)
        except PublishError as failure:
            unavailable = Rejected(503, "broker_unavailable", "")
            await _refusal(auth.identities, who, action, unavailable, conversation_id)
            headers = {**NO_STORE, "Retry-After": "5"}
            return error_response(503, failure.reason, "the broker did not take it; retry", headers=headers)
        except (SQLAlchemyError, OSError) as exc:
            # The action's transaction (and its access-log record) rolled back: nothing happened.
            log.error("desk_store_failed", error=type(exc).__name__)
            headers = {**NO_STORE, "Retry-After": "5"}
            detail = "the database did not answer; retry"
            return error_response(503, "store_unavailable", detail, headers=headers)

    return wrapped


async def _refusal(
    identities: Identities, who: Who, action: Action | None, refusal: Rejected, conversation_id: str | None
) -> web.Response:
    if action is not None:
        try:
            await identities.audit.record(audit_refusal(who, action, refusal, conversation_id))
        except (SQLAlchemyError, OSError) as exc:
            log.error("audit_refusal_not_written", error=type(exc).__name__)
    return refused(refusal)


def _summary(request: web.Request, summary: Any, now: float) -> dict[str, Any]:
    """A summary as the console shows it: with the names people read for the channel and
    for the counsellor who has it."""
    data = asdict(summary)
    data["channel_name"] = request.app[LABELS_KEY].get(summary.channel_kind, summary.channel_kind)
    data["can_reply"] = request.app[DESK_KEY].can_reply(summary.channel_kind)
    claimer = request.app[LIVE_KEY].current.counsellors.get(summary.claimed_by or "")
    data["claimed_by_name"] = claimer.name if claimer is not None else summary.claimed_by
    data["waiting_seconds"] = max(0, int(now - summary.waiting_since.timestamp()))
    data["waiting_since"] = summary.waiting_since.isoformat()
    data["last_activity_at"] = summary.last_activity_at.isoformat()
    return data


CONSOLE = Path(__file__).resolve().parent / "static" / "desk"
CONSOLE_TYPES = {"index.html": "text/html", "desk.js": "text/javascript", "desk.css": "text/css"}


async def _to_console(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/desk/")


async def console(request: web.Request) -> web.Response:
    """The counsellor console: /desk/ and its script and stylesheet; no third-party assets."""
    name = request.match_info.get("name") or "index.html"
    if name not in CONSOLE_TYPES:
        raise web.HTTPNotFound()
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
    }
    return web.Response(body=(CONSOLE / name).read_bytes(), content_type=CONSOLE_TYPES[name], headers=headers)


async def _list(request: web.Request, who: Who, desk: Desk) -> web.Response:
    include_closed = request.query.get("status") == "all"
    now = time.time()
    listed = await desk.conversations(who.identity, include_closed=include_closed)
    items = [_summary(request, s, now) for s in listed]
    return answer(200, {"team": who.identity.team, "conversations": items})


def _conversation(request: web.Request, conversation: Conversation) -> dict[str, Any]:
    def entry(e: Any) -> dict[str, Any]:
        return {**asdict(e), "at": e.at.isoformat()}

    return {
        **_summary(request, conversation.summary, time.time()),
        "handovers": [entry(h) for h in conversation.handovers],
        "transcript": [entry(e) for e in conversation.transcript],
        "notes": [entry(e) for e in conversation.notes],
        "person_left": conversation.person_left,
        "earlier": {
            "count": conversation.earlier.count,
            "last_at": conversation.earlier.last_at.isoformat() if conversation.earlier.last_at else None,
            "last_outcome": conversation.earlier.last_outcome,
        },
    }


async def _read(request: web.Request, who: Who, desk: Desk) -> web.Response:
    conversation = await desk.conversation(request.match_info["conversation_id"], who.identity)
    return answer(200, _conversation(request, conversation))


async def _note(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await read_body(request, _Note)
    note_id = await desk.add_note(request.match_info["conversation_id"], who.identity, body.text)
    return answer(201, {"status": "noted", "id": note_id})


async def _export(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """One conversation for the region's case system: JSON (default) or plain text."""
    kind = request.query.get("format", "json")
    if kind not in ("json", "text"):
        raise Rejected(422, "invalid_request", "format is json or text")
    conversation = await desk.export(request.match_info["conversation_id"], who.identity)
    name = f"gesprek-{conversation.summary.conversation_id}"
    if kind == "json":
        document = _conversation(request, conversation)
        for internal in ("notes", "earlier"):  # the team's own: not what goes to the case system
            del document[internal]
        response = answer(200, document)
        name += ".json"
    else:
        text = transcript_text(conversation)
        response = web.Response(text=text, content_type="text/plain", headers=NO_STORE)
        name += ".txt"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def transcript_text(conversation: Conversation) -> str:
    summary = conversation.summary
    lines = [
        f"Gesprek {summary.conversation_id} ({summary.channel_kind}), team {summary.team}",
        f"Begonnen: {summary.waiting_since.isoformat()}",
        "",
    ]
    for entry in conversation.transcript:
        who = "Persoon" if entry.direction == "in" else f"Hulpverlener {entry.author or ''}".strip()
        lines.append(f"[{entry.at.isoformat()}] {who}: {entry.text}")
        lines.extend(f"    (bijlage: {a.get('content_type', 'onbekend')})" for a in entry.attachments)
    return "\n".join(lines) + "\n"


ATTACHMENT_ID = re.compile(r"[0-9a-f]{32}")
EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "image/heic": "heic", "application/pdf": "pdf", "text/plain": "txt", "audio/ogg": "ogg",
    "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/amr": "amr", "video/mp4": "mp4", "video/3gpp": "3gp",
}  # fmt: skip


async def _attachment(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """An attachment the person sent, as the desk stored it: an image whose bytes agree with
    its type is shown in the page; anything else is only a download, never rendered."""
    wanted = request.match_info["attachment_id"]
    if not ATTACHMENT_ID.fullmatch(wanted):
        raise Rejected(404, "unknown_attachment", "no stored attachment with this id here")
    body = await desk.attachment(request.match_info["conversation_id"], wanted, who.identity)
    headers = {
        **NO_STORE,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if body.inline:
        return web.Response(body=body.data, content_type=body.content_type, headers=headers)
    extension = EXTENSIONS.get(body.content_type, "bin")
    headers["Content-Disposition"] = f'attachment; filename="bijlage-{body.position + 1}.{extension}"'
    return web.Response(body=body.data, content_type="application/octet-stream", headers=headers)


async def _reveal(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await read_body(request, _Reveal)
    contact = await desk.reveal(request.match_info["conversation_id"], who.identity, body.reason)
    return answer(200, contact)


async def _responses(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """Standard answers for the reply box (`config/responses/` with the console's changes):
    the team's and the national ones, filled in; `q` filters on title and text, `lang` is
    nl (default) or en."""
    if not permitted(who.identity.role, "reply"):
        raise Rejected(403, "not_permitted", "your role does not allow this")
    language = request.query.get("lang", "nl")
    if language not in ("nl", "en"):
        raise Rejected(422, "invalid_request", "lang is nl or en")
    team = who.identity.team
    edits = await request.app[ANSWERS_KEY].edits({team, NATIONAL})
    found = answers_for(request.app[LIVE_KEY].current, team, language, desk.next_open(team), edits)
    query = request.query.get("q", "").strip().casefold()[:100]
    if query:
        found = [a for a in found if query in a.title.casefold() or query in a.text.casefold()]
    return answer(200, {"answers": [asdict(a) for a in found]})


ANSWER_ID = re.compile(CODE_PATTERN)
PER_LANGUAGE = re.compile(r"^(nl|en): (.*)$", re.DOTALL)


def _managed(request: web.Request, entry: TeamAnswer) -> dict[str, Any]:
    changer = request.app[LIVE_KEY].current.counsellors.get(entry.changed_by or "")
    return {
        "id": entry.answer.id,
        "title": dict(entry.answer.title),
        "text": dict(entry.answer.text),
        "source": entry.source,
        "in_file": entry.in_file,
        "removed": entry.removed,
        "changed_by": entry.changed_by,
        "changed_by_name": changer.name if changer is not None else entry.changed_by,
        "changed_at": entry.changed_at.isoformat() if entry.changed_at is not None else None,
    }


async def _manage_answers(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """The coordinator's own team's answers (national's for the national coordinator), as
    they manage them: from the file or the console, removed ones too."""
    if not permitted(who.identity.role, "answers_edit"):
        raise Rejected(403, "not_permitted", "your role does not allow this")
    team, config = who.identity.team, request.app[LIVE_KEY].current
    listed = await request.app[ANSWERS_KEY].of_team(team)
    return answer(
        200,
        {
            "team": team,
            "team_name": team_name(config, team),
            "placeholders": list(ANSWER_PLACEHOLDERS),
            "values": placeholder_values(config, team, "nl", desk.next_open(team)),
            "answers": [_managed(request, entry) for entry in listed],
        },
    )


def _standard_answer(answer_id: str, body: _AnswerBody) -> StandardAnswer:
    """The answer checked exactly as a file answer is; its problems named per field and
    language (`text.en`), as the console shows them beside the fields."""
    try:
        return StandardAnswer.model_validate({"id": answer_id, "title": body.title, "text": body.text})
    except ValidationError as exc:
        fields = []
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in error["loc"]) or "body"
            problem = error["msg"].removeprefix("Value error, ")
            language = PER_LANGUAGE.match(problem)
            if where in ("title", "text") and language is not None:
                where, problem = f"{where}.{language[1]}", language[2]
            elif where in ("title", "text") and "(nl)" in problem:
                where = f"{where}.nl"
            fields.append((where, problem))
        raise Rejected(422, "invalid_request", "the answer is not valid", tuple(fields)) from None


def _answer_id(request: web.Request) -> str:
    answer_id = request.match_info["answer_id"]
    if len(answer_id) > 80 or not ANSWER_ID.fullmatch(answer_id):
        raise Rejected(404, "unknown_answer", "the team has no answer with this id")
    return answer_id


async def _save_answer(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await read_body(request, _AnswerBody)
    standard = _standard_answer(request.match_info["answer_id"], body)
    answers = request.app[ANSWERS_KEY]
    change = await answers.save(who.identity, standard)
    saved = next(e for e in await answers.of_team(who.identity.team) if e.answer.id == standard.id)
    return answer(200, {"status": change, "answer": _managed(request, saved)})


async def _remove_answer(request: web.Request, who: Who, desk: Desk) -> web.Response:
    await request.app[ANSWERS_KEY].remove(who.identity, _answer_id(request))
    return web.Response(status=204, headers=NO_STORE)


async def _restore_answer(request: web.Request, who: Who, desk: Desk) -> web.Response:
    await request.app[ANSWERS_KEY].restore(who.identity, _answer_id(request))
    return web.Response(status=204, headers=NO_STORE)


async def _teams(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """Every team a conversation can go to, by the names people read: the national team,
    then the regions by name."""
    listed = teams(request.app[LIVE_KEY].current)
    return answer(200, {"teams": [{"code": code, "name": name} for code, name in listed]})


async def _wrap_up(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """The registration's fields and options (desk.yaml), for the console's close form."""
    return answer(200, request.app[LIVE_KEY].current.desk.wrap_up.model_dump())


async def _claim(request: web.Request, who: Who, desk: Desk) -> web.Response:
    summary = await desk.claim(request.match_info["conversation_id"], who.identity)
    claimed = {"claimed_by": who.identity.account, "status": "claimed"}
    return answer(200, _summary(request, summary, time.time()) | claimed)


async def _board(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """The coordinator's wall board: per team the queue, the longest wait, who is online
    and how many conversations each has."""
    teams = await desk.board(who.identity)
    listed = [
        {
            **{k: v for k, v in asdict(board).items() if k != "counsellors"},
            "counsellors": [{"counsellor": a, "name": n, "load": load} for a, n, load in board.counsellors],
        }
        for board in teams
    ]
    return answer(200, {"teams": listed})


async def _move(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await read_body(request, _Transfer)
    await desk.move(request.match_info["conversation_id"], who.identity, body.team, body.reason)
    return answer(200, {"status": "moved", "team": body.team})


async def _next(request: web.Request, who: Who, desk: Desk) -> web.Response:
    summary = await desk.claim_next(who.identity)
    return answer(200, _summary(request, summary, time.time()))


async def _reply(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await read_body(request, _Reply)
    reply_id = await desk.reply(request.match_info["conversation_id"], who.identity, body.text)
    return answer(202, {"status": "queued", "id": reply_id})


async def _transfer(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await read_body(request, _Transfer)
    await desk.transfer(request.match_info["conversation_id"], who.identity, body.team, body.reason)
    return answer(200, {"status": "transferred", "team": body.team})


async def _close(request: web.Request, who: Who, desk: Desk) -> web.Response:
    body = await request.read()
    data = decode_json(body, request.content_type, request.charset) if body else {}
    if not isinstance(data, dict):
        raise Rejected(422, "invalid_request", "the body is the registration, a JSON object")
    await desk.close_conversation(request.match_info["conversation_id"], who.identity, data)
    return answer(200, {"status": "closed"})


async def _events(request: web.Request, who: Who, desk: Desk) -> web.StreamResponse:
    """Server-sent events: `changed` with a conversation id whenever one of the team's changes.
    At every keep-alive the session is looked up again (without counting as use): the
    stream ends within one keep-alive of the session's end."""
    auth = request.app[AUTH_KEY]
    if not permitted(who.identity.role, "list"):  # the stream names the team's conversations
        raise Rejected(403, "not_permitted", "your role does not allow this")
    team = who.identity.team
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)

    every_team = who.identity.role == "coordinator" and team == NATIONAL  # the national wall board

    def on_change(changed_team: str, conversation_id: str) -> None:
        if (every_team or changed_team == team) and not queue.full():
            queue.put_nowait(conversation_id)

    unsubscribe = desk.listen(on_change)
    try:
        await response.write(b": connected\n\n")
        while True:
            try:
                conversation_id = await asyncio.wait_for(queue.get(), KEEP_ALIVE_SECONDS)
                await response.write(f"event: changed\ndata: {conversation_id}\n\n".encode())
            except TimeoutError:
                if await auth.identities.current(
                    "desk", who.token, auth.idle, auth.account, touch=False
                ) is None:
                    await response.write(b"event: signed_out\ndata: \n\n")
                    break
                await response.write(b": keep-alive\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        unsubscribe()
    return response


async def _audit(request: web.Request, who: Who, desk: Desk) -> web.Response:
    """The access log, newest first, for the privacy officer: their own team's records, or
    every team's for the national one. Reading it is recorded first: no record, no answer."""
    query = request.query
    unknown = set(query) - {"account", "conversation", "action", "since", "until", "limit"}
    if unknown:
        raise Rejected(422, "invalid_request", f"unknown filter: {sorted(unknown)[0]}")
    action = query.get("action")
    if action is not None and action not in ACTIONS:
        raise Rejected(422, "invalid_request", "action must be one of the access log's actions")
    limit = query.get("limit", str(AUDIT_LIMIT))
    if not limit.isdigit() or not 0 < int(limit) <= AUDIT_LIMIT:
        raise Rejected(422, "invalid_request", f"limit must be 1 to {AUDIT_LIMIT}")
    team = who.identity.team
    filters = AuditQuery(
        account=query.get("account"),
        conversation_id=query.get("conversation"),
        action=action,
        team=None if team == NATIONAL else team,
        since=parse_time(query["since"], "since") if "since" in query else None,
        until=parse_time(query["until"], "until") if "until" in query else None,
        limit=int(limit),
    )
    audit = request.app[AUTH_KEY].identities.audit
    await audit.record(AuditEvent.by(who.identity, "audit_read"))
    records = await audit.records(filters)
    listed = [{k: v for k, v in r.items() if k not in ("prev_hash", "hash")} for r in records]
    for record in listed:
        record["at"] = record["at"].isoformat()
    return answer(200, {"records": listed})


CONVERSATION = "/api/v1/conversations/{conversation_id}"
CONVERSATION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
ROUTES: list[tuple[str, str, Handler, Action | None, bool]] = [
    ("GET", "/api/v1/conversations", _list, "list", False),
    ("GET", "/api/v1/conversations/{conversation_id}", _read, "read", False),
    ("POST", "/api/v1/conversations/{conversation_id}/claim", _claim, "claim", True),
    ("POST", "/api/v1/queue/next", _next, "claim", True),
    ("GET", "/api/v1/board", _board, "board", False),
    ("POST", "/api/v1/conversations/{conversation_id}/move", _move, "move", True),
    ("POST", "/api/v1/conversations/{conversation_id}/reply", _reply, "reply", True),
    ("POST", "/api/v1/conversations/{conversation_id}/transfer", _transfer, "transfer", True),
    ("POST", "/api/v1/conversations/{conversation_id}/close", _close, "close", True),
    ("POST", "/api/v1/conversations/{conversation_id}/notes", _note, "note", True),
    ("GET", "/api/v1/conversations/{conversation_id}/export", _export, "export", False),
    ("GET", f"{CONVERSATION}/attachments/{{attachment_id}}", _attachment, "read", False),
    ("POST", "/api/v1/conversations/{conversation_id}/reveal", _reveal, "reveal", True),
    ("GET", "/api/v1/wrap-up", _wrap_up, None, False),
    ("GET", "/api/v1/responses", _responses, None, False),
    ("GET", "/api/v1/responses/manage", _manage_answers, None, False),
    ("PUT", "/api/v1/responses/{answer_id}", _save_answer, "answers_edit", True),
    ("DELETE", "/api/v1/responses/{answer_id}", _remove_answer, "answers_edit", True),
    ("POST", "/api/v1/responses/{answer_id}/restore", _restore_answer, "answers_edit", True),
    ("GET", "/api/v1/teams", _teams, None, False),
    ("GET", "/api/v1/events", _events, None, False),
    ("GET", "/api/v1/audit", _audit, "audit_read", False),
    ("GET", "/api/v1/reports", reports_api.report, "report_read", False),
    ("GET", "/api/v1/reports/export", reports_api.export, "report_export", False),
    ("GET", "/api/v1/reports/chart", reports_api.chart, "report_read", False),
]


async def openapi(request: web.Request) -> web.Response:
    return answer(200, OPENAPI)


def add_routes(
    app: web.Application,
    desk: Desk,
    live: LiveConfig,
    identities: Identities,
    keyring: Keyring,
    demo_accounts: bool,
    channel_labels: dict[str, str] | None = None,
) -> None:
    app[DESK_KEY] = desk
    app[LABELS_KEY] = channel_labels or {}
    store = app[STORE_KEY]
    if store is None:
        raise ValueError("the desk's API needs the store (create_app(store=...))")
    app[ANSWERS_KEY] = ConsoleAnswers(store, identities.audit, live)
    app[reports_api.REPORTS_KEY] = Reports(store, live, identities.audit)
    add_auth_routes(app, live, identities, keyring, demo_accounts)
    app.router.add_get("/desk", _to_console)
    app.router.add_get("/desk/", console)
    app.router.add_get("/desk/{name}", console)
    app.router.add_get("/api/v1/openapi.json", openapi)
    for method, path, handler, action, changes in ROUTES:
        app.router.add_route(method, path, _action(handler, action, changes=changes))


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    }


TEAM_AND_REASON = {  # a transfer's and a move's body
    "type": "object",
    "required": ["team", "reason"],
    "properties": {"team": {"type": "string"}, "reason": {"type": "string"}},
}
_SUMMARY = {
    "type": "object",
    "required": [
        "conversation_id",
        "team",
        "channel_kind",
        "status",
        "urgent",
        "after_hours",
        "waiting_seconds",
    ],
    "properties": {
        "conversation_id": {"type": "string"},
        "team": {"type": "string"},
        "channel_kind": {"type": "string"},
        "status": {"type": "string", "enum": ["waiting", "claimed", "closed"]},
        "urgent": {"type": "boolean"},
        "after_hours": {"type": "boolean"},
        "claimed_by": {"type": ["string", "null"]},
        "waiting_since": {"type": "string", "format": "date-time"},
        "last_activity_at": {"type": "string", "format": "date-time"},
        "waiting_seconds": {"type": "integer"},
        "returned": {"type": "boolean", "description": "back in the queue after a claim without a reply"},
        "acute": {"type": "boolean", "description": "acute danger (apart from urgent)"},
        "preview": {"type": "string", "description": "the start of the person's last message"},
        "channel_name": {"type": "string", "description": "the channel as people call it"},
        "claimed_by_name": {"type": ["string", "null"]},
        "can_reply": {"type": "boolean", "description": "false: the channel carries no replies; call back"},
    },
}


def _operation(summary: str, ok: int, ok_schema: dict[str, Any], *, body: dict[str, Any] | None = None,
               conversation: bool = False) -> dict[str, Any]:  # fmt: skip
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}, {"cookie": []}],
        "responses": {
            str(ok): {"description": "done", "content": {"application/json": {"schema": ok_schema}}},
            "401": {"description": "no session", **error},
        },
    }
    if conversation:
        operation["parameters"] = [
            {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ]
        operation["responses"]["403"] = {"description": "another team's conversation", **error}
        operation["responses"]["404"] = {"description": "unknown conversation", **error}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        operation["responses"]["422"] = {"description": "invalid body", **error}
    return operation


_LANGUAGES = {
    "type": "object",
    "required": ["nl"],
    "properties": {"nl": {"type": "string"}, "en": {"type": "string"}},
    "additionalProperties": False,
}
_MANAGED_ANSWER = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "title": _LANGUAGES,
        "text": _LANGUAGES,
        "source": {"type": "string", "enum": ["file", "console"], "description": "the version in force"},
        "in_file": {"type": "boolean", "description": "the team's file has this id: restore goes back to it"},
        "removed": {"type": "boolean", "description": "a file answer hidden in the console"},
        "changed_by": {"type": ["string", "null"]},
        "changed_by_name": {"type": ["string", "null"]},
        "changed_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _answer_operation(summary: str, ok: int, ok_schema: dict[str, Any], *,
                      body: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    operation = _operation(summary, ok, ok_schema, body=body)
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    schema = {"type": "string", "pattern": CODE_PATTERN}
    operation["parameters"] = [{"name": "answer_id", "in": "path", "required": True, "schema": schema}]
    operation["responses"]["403"] = {"description": "not_permitted: coordinators only", **error}
    operation["responses"]["404"] = {"description": "unknown_answer", **error}
    return operation


_REPORT_QUERY = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": what}
    for name, what in (
        ("team", "a region code, national, or all (the country); default: your team, all for national"),
        ("period", "an ISO week 2026-W48, an inventory period 2026-P24 or a month 2026-11"),
        ("from", "the first day, YYYY-MM-DD (with to)"),
        ("to", "the last day, YYYY-MM-DD, included"),
    )
]
_CHART_OPERATION = _operation(
    "A chart of the same report as SVG (recorded as a read): trend per week, channel mix, age "
    "groups or contact roles; a hidden count is drawn as text, with no bar",
    200,
    {"type": "string"},
)
_CHART_OPERATION["responses"]["200"]["content"] = {"image/svg+xml": {"schema": {"type": "string"}}}
_CHART_OPERATION["parameters"] = [
    {"name": "chart", "in": "query", "required": True,
     "schema": {"type": "string", "enum": ["trend", "channels", "age", "roles"]}},
    *_REPORT_QUERY,
]  # fmt: skip
OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Veilig Thuis gateway: counsellor desk", "version": "1"},
    "components": {
        "schemas": {"Error": _error_schema(), "Summary": _SUMMARY},
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "__Host-" + COOKIE},
        },
    },
    "paths": {
        "/api/v1/session": {
            "post": {
                "summary": "Sign in; returns a bearer token (also set as a cookie) and a CSRF token",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["counsellor", "password"],
                                "properties": {
                                    "counsellor": {"type": "string"},
                                    "password": {"type": "string"},
                                    "code": {"type": "string", "description": "TOTP or recovery code"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "signed in (second_factor: ok, enrol or off)"},
                    "401": {"description": "wrong_credentials, second_factor_required, wrong_second_factor"},
                    "429": {"description": "too many sign-ins from this address or for this account"},
                    "422": {"description": "invalid body"},
                },
            },
            "delete": _operation("Sign out: the session ends on every process", 204, {}),
        },
        "/api/v1/sessions": {"get": _operation("One's own active sessions", 200, {"type": "object"})},
        "/api/v1/sessions/{session_id}": {
            "delete": {
                **_operation("End one of one's own sessions", 204, {}),
                "parameters": [
                    {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            }
        },
        "/api/v1/second-factor": {
            "post": _operation(
                "Start TOTP enrolment: secret, otpauth URI, QR code (SVG)", 200, {"type": "object"}
            )
        },
        "/api/v1/second-factor/confirm": {
            "post": _operation(
                "Confirm with a code: ten recovery codes and a new session; every earlier one ends",
                200,
                {"type": "object"},
                body={"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}},
            )
        },
        "/api/v1/password": {
            "post": _operation(
                "Change one's password; every session of the account ends",
                204,
                {},
                body={
                    "type": "object",
                    "required": ["current_password", "new_password"],
                    "properties": {
                        "current_password": {"type": "string"},
                        "new_password": {"type": "string"},
                    },
                },
            )
        },
        "/api/v1/oidc/login": {
            "get": {
                "summary": "Sign in through the region's identity provider (302 there; 404 if none)",
                "responses": {"302": {"description": "to the provider"}, "404": {"description": "none"}},
            }
        },
        "/api/v1/oidc/callback": {
            "get": {
                "summary": "The provider's answer: 303 to /desk/ with a session, or a refusal page",
                "responses": {"303": {"description": "signed in"}, "403": {"description": "no team"}},
            }
        },
        "/api/v1/audit": {
            "get": {
                **_operation(
                    "The access log, newest first (privacy-officer only; reading it is recorded)",
                    200,
                    {"type": "object"},
                ),
                "parameters": [
                    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                    for name in ("account", "conversation", "action", "since", "until", "limit")
                ],
            }
        },
        "/api/v1/reports": {
            "get": {
                **_operation(
                    "The figures of a team or the country for a period, small numbers suppressed "
                    "(coordinators; every read is recorded; docs/reports.md)",
                    200,
                    {"type": "object"},
                ),
                "parameters": _REPORT_QUERY,
            }
        },
        "/api/v1/reports/export": {
            "get": {
                **_operation("The same report as CSV (recorded as an export)", 200, {"type": "string"}),
                "parameters": _REPORT_QUERY,
            }
        },
        "/api/v1/reports/chart": {"get": _CHART_OPERATION},
        "/api/v1/me": {"get": _operation("Who is signed in", 200, {"type": "object"})},
        "/api/v1/conversations": {
            "get": _operation(
                "The team's conversations, urgent first, then the longest waiting",
                200,
                {
                    "type": "object",
                    "properties": {
                        "conversations": {"type": "array", "items": {"$ref": "#/components/schemas/Summary"}}
                    },
                },
            )
        },
        "/api/v1/conversations/{conversation_id}": {
            "get": _operation("A conversation and its transcript", 200, {"type": "object"}, conversation=True)
        },
        "/api/v1/conversations/{conversation_id}/claim": {
            "post": _operation(
                "Claim it (409 with claimed_by if another has it)",
                200,
                {"$ref": "#/components/schemas/Summary"},
                conversation=True,
            )
        },
        "/api/v1/board": {
            "get": _operation(
                "The coordinator's wall board: per team waiting (urgent, normal), longest wait, claimed, "
                "held after hours, returned, open, counsellors online and their load",
                200,
                {"type": "object"},
            )
        },
        "/api/v1/conversations/{conversation_id}/move": {
            "post": _operation(
                "A coordinator moves a waiting conversation to another open team (an overflow)",
                200,
                {"type": "object"},
                conversation=True,
                body=TEAM_AND_REASON,
            )
        },
        "/api/v1/queue/next": {
            "post": _operation(
                "Volgende: claim the team's next waiting conversation (404 queue_empty, 409 at_capacity)",
                200,
                {"$ref": "#/components/schemas/Summary"},
            )
        },
        "/api/v1/conversations/{conversation_id}/reply": {
            "post": _operation(
                "Reply through the person's own channel",
                202,
                {"type": "object"},
                conversation=True,
                body={"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
            )
        },
        "/api/v1/conversations/{conversation_id}/transfer": {
            "post": _operation(
                "Transfer to another region or national, with a reason",
                200,
                {"type": "object"},
                conversation=True,
                body=TEAM_AND_REASON,
            )
        },
        "/api/v1/conversations/{conversation_id}/close": {
            "post": _operation(
                "Close it with its registration (desk.yaml's fields; 422 registration_incomplete names them)",
                200,
                {"type": "object"},
                conversation=True,
                body={
                    "type": "object",
                    "required": ["contact_role", "age_group", "topics", "outcome"],
                    "properties": {
                        "contact_role": {"type": "string"},
                        "age_group": {"type": "string"},
                        "topics": {"type": "array", "items": {"type": "string"}},
                        "outcome": {"type": "string"},
                        "note": {"type": "string"},
                    },
                },
            )
        },
        "/api/v1/conversations/{conversation_id}/notes": {
            "post": _operation(
                "An internal note for the team; never sent to the person",
                201,
                {"type": "object"},
                conversation=True,
                body={"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
            )
        },
        "/api/v1/conversations/{conversation_id}/export": {
            "get": {
                **_operation(
                    "The conversation for the case system (by the counsellor who has it; recorded)",
                    200,
                    {"type": "object"},
                    conversation=True,
                ),
                "parameters": [
                    {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "text"]}},
                ],
            }
        },
        "/api/v1/conversations/{conversation_id}/attachments/{attachment_id}": {
            "get": {
                **_operation(
                    "An attachment the person sent, fetched from the provider by the desk (recorded)",
                    200,
                    {"type": "string", "format": "binary"},
                    conversation=True,
                ),
                "parameters": [
                    {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "attachment_id", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
            }
        },
        "/api/v1/conversations/{conversation_id}/reveal": {
            "post": _operation(
                "The contact to call back on a channel without replies (Masker 19), with a reason; recorded",
                200,
                {"type": "object"},
                conversation=True,
                body={
                    "type": "object",
                    "required": ["reason"],
                    "properties": {"reason": {"type": "string", "enum": ["call_back", "report", "other"]}},
                },
            )
        },
        "/api/v1/responses": {
            "get": {
                **_operation(
                    "Standard answers (the team's and national, filled in) for the reply box",
                    200,
                    {"type": "object"},
                ),
                "parameters": [
                    {"name": "lang", "in": "query", "schema": {"type": "string", "enum": ["nl", "en"]}},
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                ],
            }
        },
        "/api/v1/responses/manage": {
            "get": _operation(
                "Coordinators: their team's standard answers to edit (national's for the national "
                "coordinator), from the file or the console, removed ones too; and the placeholders",
                200,
                {
                    "type": "object",
                    "properties": {
                        "team": {"type": "string"},
                        "team_name": {"type": "string"},
                        "placeholders": {"type": "array", "items": {"type": "string"}},
                        "values": {
                            "type": "object",
                            "description": "what each placeholder says for the team now (in Dutch)",
                            "additionalProperties": {"type": "string"},
                        },
                        "answers": {"type": "array", "items": _MANAGED_ANSWER},
                    },
                },
            )
        },
        "/api/v1/responses/{answer_id}": {
            "put": _answer_operation(
                "Coordinators: add a standard answer to their team, or put it in place of the one "
                "with this id (a file answer too); checked as a file answer is; recorded as answers_edit",
                200,
                {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": ["added", "changed"]},
                        "answer": _MANAGED_ANSWER,
                    },
                },
                body={
                    "type": "object",
                    "required": ["title", "text"],
                    "properties": {"title": _LANGUAGES, "text": _LANGUAGES},
                    "additionalProperties": False,
                },
            ),
            "delete": _answer_operation(
                "Coordinators: remove one of their team's answers (a file answer is hidden until "
                "restored); recorded as answers_edit",
                204,
                {},
            ),
        },
        "/api/v1/responses/{answer_id}/restore": {
            "post": _answer_operation(
                "Coordinators: back to the file's version of an answer edited or removed in the "
                "console (409 not_changed when it is in force already); recorded as answers_edit",
                204,
                {},
            )
        },
        "/api/v1/teams": {
            "get": _operation(
                "Every team a conversation can go to (code and name): national first, then the regions",
                200,
                {
                    "type": "object",
                    "properties": {
                        "teams": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["code", "name"],
                                "properties": {"code": {"type": "string"}, "name": {"type": "string"}},
                            },
                        }
                    },
                },
            )
        },
        "/api/v1/wrap-up": {
            "get": _operation(
                "The registration's fields and options, for the close form", 200, {"type": "object"}
            )
        },
        "/api/v1/events": {
            "get": {
                "summary": "Server-sent events: `changed` with a conversation id",
                "security": [{"bearer": []}, {"cookie": []}],
                "responses": {
                    "200": {"description": "text/event-stream"},
                    "401": {"description": "no session"},
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
        },
    },
}
