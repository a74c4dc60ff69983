"""Standard answers a coordinator edits in the console, against the real RabbitMQ and
PostgreSQL with two desk processes: an answer added through one process is in the reply
box of the team's counsellors through the other at once, and of no other team; editing,
removing (a file answer is hidden, and can be restored) and the national coordinator's
national answers; counsellors may not; a bad placeholder is named by its field; every
change is in the access log; the file answers still reload with SIGHUP."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import asyncpg
import pytest
import yaml

from gateway.service import load_config
from tests.integration.conftest import call, running_desks

pytestmark = pytest.mark.broker

ZOB_NAME = "Veilig Thuis Zuidoost-Brabant"
ADDRESS = {
    "title": {"nl": "Adres"},
    "text": {"nl": "Je kunt ook langskomen bij {team}; bel eerst {phone}."},
}


@pytest.fixture
async def desks(vhost, database_url, tmp_path, example_env, password_hash) -> AsyncIterator[dict]:
    async with running_desks(vhost, database_url, tmp_path, password_hash) as world:
        # tests/conftest.py's clean_state does not know this table: start without its rows.
        db = await asyncpg.connect(database_url)
        try:
            await db.execute("DELETE FROM desk_answers")
        finally:
            await db.close()
        yield world


async def reply_box(desks: dict, counsellor: str, *, via: str = "b", lang: str = "nl") -> dict[str, dict]:
    """What a counsellor's "/" list holds, by answer id (the team's own ones win a tie)."""
    status, body = await call(
        desks[via].base, "GET", f"/api/v1/responses?lang={lang}", desks["tokens"][counsellor]
    )
    assert status == 200, body
    found: dict[str, dict] = {}
    for item in body["answers"]:
        found.setdefault(item["id"], item)
    return found


async def manage(desks: dict, coordinator: str, *, via: str = "a") -> dict[str, dict]:
    status, body = await call(
        desks[via].base, "GET", "/api/v1/responses/manage", desks["tokens"][coordinator]
    )
    assert status == 200, body
    return {item["id"]: item for item in body["answers"]}


async def edit_records(database_url: str) -> list[tuple]:
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            "SELECT account, team, result, reason FROM audit_log WHERE action = 'answers_edit' ORDER BY seq"
        )
    finally:
        await db.close()
    return [tuple(r) for r in rows]


async def test_a_coordinator_adds_edits_and_removes_and_the_team_sees_it_at_once(desks) -> None:
    a, tokens = desks["a"], desks["tokens"]
    cora = tokens["cora-zob"]
    status, body = await call(a.base, "GET", "/api/v1/responses/manage", cora)
    assert status == 200 and body["team"] == "zuidoost-brabant" and body["team_name"] == ZOB_NAME
    assert body["placeholders"] == ["next_open", "phone", "team"]
    assert [(x["id"], x["source"], x["in_file"], x["removed"]) for x in body["answers"]] == [
        ("spreekuur", "file", True, False)
    ], "a regional coordinator manages their own team's answers, not the national ones"

    # Added through one desk process, in the reply box through the other at once.
    status, body = await call(a.base, "PUT", "/api/v1/responses/adres", cora, ADDRESS)
    assert status == 200 and body["status"] == "added", body
    assert body["answer"] | {"changed_at": None} == {
        "id": "adres",
        "title": {"nl": "Adres"},
        "text": ADDRESS["text"],
        "source": "console",
        "in_file": False,
        "removed": False,
        "changed_by": "cora-zob",
        "changed_by_name": "Cora",
        "changed_at": None,
    }
    seen = await reply_box(desks, "anna-zob", via="b")
    assert seen["adres"] == {
        "id": "adres",
        "team": "zuidoost-brabant",
        "title": "Adres",
        "text": f"Je kunt ook langskomen bij {ZOB_NAME}; bel eerst 0800-2000.",
    }
    assert list(seen)[:2] == ["spreekuur", "adres"], "the team's own first: the file's, then the console's"
    assert "welkom" in seen, "the national ones are still there"
    assert (await reply_box(desks, "anna-zob", lang="en"))["adres"]["title"] == "Adres", "no English: Dutch"
    status, body = await call(a.base, "GET", "/api/v1/responses?q=langskomen", tokens["bram-zob"])
    assert status == 200 and [x["id"] for x in body["answers"]] == ["spreekuur", "adres"]
    for other in ("carla-rr", "dirk-landelijk"):
        assert "adres" not in await reply_box(desks, other), f"{other} sees another team's answer"

    # Edited: English added; in force at once.
    edited = {"title": {"nl": "Adres", "en": "Address"}, "text": {**ADDRESS["text"], "en": "Visit {team}."}}
    status, body = await call(a.base, "PUT", "/api/v1/responses/adres", cora, edited)
    assert status == 200 and body["status"] == "changed"
    assert (await reply_box(desks, "anna-zob", lang="en"))["adres"]["text"] == f"Visit {ZOB_NAME}."

    # A file answer edited in the console takes the file's place; removed, it is hidden;
    # restored, the file's version is back.
    spreekuur = {"title": {"nl": "Spreekuur"}, "text": {"nl": "Spreekuur: dinsdag 14-16 uur."}}
    status, body = await call(a.base, "PUT", "/api/v1/responses/spreekuur", cora, spreekuur)
    assert status == 200 and body["status"] == "changed"
    assert (body["answer"]["source"], body["answer"]["in_file"]) == ("console", True)
    seen = await reply_box(desks, "anna-zob")
    assert seen["spreekuur"]["text"] == "Spreekuur: dinsdag 14-16 uur."
    status, _ = await call(a.base, "DELETE", "/api/v1/responses/spreekuur", cora)
    assert status == 204
    assert "spreekuur" not in await reply_box(desks, "anna-zob")
    hidden = (await manage(desks, "cora-zob", via="b"))["spreekuur"]
    assert (hidden["removed"], hidden["source"], hidden["title"]) == (
        True,
        "file",
        {"nl": "Spreekuur Eindhoven"},
    )
    status, body = await call(a.base, "DELETE", "/api/v1/responses/spreekuur", cora)
    assert (status, body["error"]) == (404, "unknown_answer"), "removed twice"
    status, _ = await call(a.base, "POST", "/api/v1/responses/spreekuur/restore", cora)
    assert status == 204
    assert (await reply_box(desks, "anna-zob"))["spreekuur"]["title"] == "Spreekuur Eindhoven"
    status, body = await call(a.base, "POST", "/api/v1/responses/spreekuur/restore", cora)
    assert (status, body["error"]) == (409, "not_changed")
    status, body = await call(a.base, "POST", "/api/v1/responses/adres/restore", cora)
    assert (status, body["error"]) == (404, "unknown_answer"), "a console answer has no file version"

    # A console answer removed is gone.
    status, _ = await call(a.base, "DELETE", "/api/v1/responses/adres", cora)
    assert status == 204
    assert "adres" not in await reply_box(desks, "anna-zob")
    assert "adres" not in await manage(desks, "cora-zob")
    status, body = await call(a.base, "DELETE", "/api/v1/responses/adres", cora)
    assert (status, body["error"]) == (404, "unknown_answer")

    # The national coordinator's answers are every team's.
    nina = tokens["nina-landelijk"]
    assert list(await manage(desks, "nina-landelijk")) == ["welkom", "acuut", "bellen", "afsluiten"]
    landelijk = {"title": {"nl": "Chat 24/7"}, "text": {"nl": "Wij zijn dag en nacht bereikbaar."}}
    status, body = await call(a.base, "PUT", "/api/v1/responses/chat-dag-en-nacht", nina, landelijk)
    assert status == 200 and body["status"] == "added"
    for counsellor in ("anna-zob", "carla-rr", "dirk-landelijk"):
        seen = await reply_box(desks, counsellor)
        assert seen["chat-dag-en-nacht"]["team"] == "national", counsellor
    assert "chat-dag-en-nacht" not in await manage(desks, "cora-zob")

    assert await edit_records(desks["database_url"]) == [
        ("cora-zob", "zuidoost-brabant", "ok", "add:adres"),
        ("cora-zob", "zuidoost-brabant", "ok", "edit:adres"),
        ("cora-zob", "zuidoost-brabant", "ok", "edit:spreekuur"),
        ("cora-zob", "zuidoost-brabant", "ok", "remove:spreekuur"),
        ("cora-zob", "zuidoost-brabant", "failed", "unknown_answer"),
        ("cora-zob", "zuidoost-brabant", "ok", "restore:spreekuur"),
        ("cora-zob", "zuidoost-brabant", "failed", "not_changed"),
        ("cora-zob", "zuidoost-brabant", "failed", "unknown_answer"),
        ("cora-zob", "zuidoost-brabant", "ok", "remove:adres"),
        ("cora-zob", "zuidoost-brabant", "failed", "unknown_answer"),
        ("nina-landelijk", "national", "ok", "add:chat-dag-en-nacht"),
    ]
    for process in (desks["a"], desks["b"]):
        logs = process.logs()
        assert "langskomen" not in logs and "dag en nacht bereikbaar" not in logs, (
            "an answer's text was logged"
        )


async def test_only_coordinators_edit_and_a_bad_answer_is_named_by_its_field(desks) -> None:
    a, tokens = desks["a"], desks["tokens"]
    anna, cora = tokens["anna-zob"], tokens["cora-zob"]
    before = await reply_box(desks, "anna-zob")
    for method, path, body in (
        ("GET", "/api/v1/responses/manage", None),
        ("PUT", "/api/v1/responses/adres", ADDRESS),
        ("DELETE", "/api/v1/responses/spreekuur", None),
        ("POST", "/api/v1/responses/spreekuur/restore", None),
    ):
        status, answer = await call(a.base, method, path, anna, body)
        assert (status, answer.get("error")) == (403, "not_permitted"), (method, path)
        status, answer = await call(a.base, method, path, None, body)
        assert (status, answer.get("error")) == (401, "no_session"), (method, path)

    def text(nl: str, en: str | None = None) -> dict:
        return {"title": {"nl": "Titel"}, "text": {"nl": nl, **({"en": en} if en is not None else {})}}

    for path, body, field, problem in (
        ("adres", text("Hallo {naam}"), "text.nl", "unknown placeholder {naam}"),
        ("adres", text("Hallo {team}", "Hello {name}"), "text.en", "unknown placeholder {name}"),
        ("adres", text("Een lone { brace"), "text.nl", "a lone { or }"),
        ("adres", {"title": {"en": "Title"}, "text": {"nl": "Hallo"}}, "title.nl", "Dutch text (nl)"),
        ("adres", text("   "), "text.nl", "at least 1 character"),
        ("adres", {**text("Hallo"), "team": "national"}, "team", "Extra inputs are not permitted"),
        (
            "adres",
            {"title": {"nl": "Titel", "fr": "Titre"}, "text": {"nl": "Hallo"}},
            "title.fr.[key]",
            "'nl' or 'en'",
        ),
        ("Adres%20Eindhoven", text("Hallo"), "id", "should match pattern"),
    ):
        status, answer = await call(a.base, "PUT", f"/api/v1/responses/{path}", cora, body)
        assert (status, answer.get("error")) == (422, "invalid_request"), (body, answer)
        assert set(answer) == {"error", "detail", "fields"}, "the gateway's one error shape"
        assert [f["field"] for f in answer["fields"]] == [field], answer
        assert problem in answer["fields"][0]["problem"], answer
    status, answer = await call(a.base, "DELETE", "/api/v1/responses/Niet%20Geldig", cora)
    assert (status, answer["error"]) == (404, "unknown_answer")
    assert await reply_box(desks, "anna-zob") == before, "a refused change changed the reply box"
    assert await manage(desks, "cora-zob") == await manage(desks, "cora-zob", via="b")
    records = await edit_records(desks["database_url"])
    denied = [r for r in records if r[0] == "anna-zob"]
    assert denied == [("anna-zob", "zuidoost-brabant", "denied", "not_permitted")] * 3, "PUT, DELETE, restore"
    assert [r[2:] for r in records if r[0] == "cora-zob"] == [("failed", "invalid_request")] * 8 + [
        ("failed", "unknown_answer")
    ]


async def test_file_answers_still_reload_beside_the_consoles(desks) -> None:
    a, cora = desks["a"], desks["tokens"]["cora-zob"]
    status, _ = await call(a.base, "PUT", "/api/v1/responses/adres", cora, ADDRESS)
    assert status == 200
    path = desks["root"] / "responses" / "zuidoost-brabant.yaml"
    data = yaml.safe_load(path.read_text())
    data["answers"].append({"id": "wachttijd", "title": {"nl": "Wachttijd"}, "text": {"nl": "Even geduld."}})
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    load_config(desks["root"])  # still a valid configuration
    for process in (desks["a"], desks["b"]):
        process.process.send_signal(signal.SIGHUP)
    for via in ("a", "b"):
        for _ in range(100):
            seen = await reply_box(desks, "anna-zob", via=via)
            if "wachttijd" in seen:
                break
            await asyncio.sleep(0.1)
        assert list(seen)[:3] == ["spreekuur", "wachttijd", "adres"], via


async def test_the_teams_a_conversation_can_go_to(desks) -> None:
    status, body = await call(desks["b"].base, "GET", "/api/v1/teams", desks["tokens"]["anna-zob"])
    assert status == 200
    listed = body["teams"]
    config = load_config(desks["root"])
    assert len(listed) == len(config.regions) + 1 == 27  # the 26 regions and the national team
    assert {t["code"] for t in listed} == set(config.team_codes)
    assert listed[0] == {"code": "national", "name": config.national.name}
    names = [t["name"] for t in listed[1:]]
    assert names == sorted(names, key=str.casefold) and all(n.startswith("Veilig Thuis ") for n in names)
    status, body = await call(desks["b"].base, "GET", "/api/v1/teams", None)
    assert (status, body["error"]) == (401, "no_session")
