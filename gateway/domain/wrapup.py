"""The registration at close, checked against `desk.yaml`: pure, no I/O.

A counsellor closing a conversation says who wrote, their age group, the topics and
the outcome (codes from the configured options) and may add a note. The figures
are made from the codes; the note stays with the conversation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.models import WrapUp

Problem = tuple[str, str]


@dataclass(frozen=True)
class Registration:
    contact_role: str
    age_group: str
    topics: tuple[str, ...]
    outcome: str
    serious: bool
    note: str


def registration_from(
    body: Mapping[str, object], wrap_up: WrapUp
) -> tuple[Registration | None, list[Problem]]:
    """The registration in a close request's body, or every problem (field, what is wrong:
    never the value given)."""
    problems: list[Problem] = []
    chosen: dict[str, tuple[str, ...]] = {}
    for name, field in wrap_up.fields().items():
        given = body.get(name)
        codes = tuple(given) if isinstance(given, list) else (given,) if given not in (None, "") else ()
        known = {option.code for option in field.options}
        if not codes:
            if field.required:
                problems.append((name, f"required: one{' or more' if field.multiple else ''} of the options"))
            chosen[name] = ()
            continue
        if not all(isinstance(code, str) and code in known for code in codes):
            problems.append((name, "not one of the configured options"))
        elif len(codes) > 1 and not field.multiple:
            problems.append((name, "only one option may be chosen"))
        elif len(set(codes)) != len(codes):
            problems.append((name, "an option is given twice"))
        chosen[name] = tuple(str(code) for code in codes)
    note = body.get("note", "")
    if not isinstance(note, str):
        problems.append(("note", "must be text"))
    elif len(note) > wrap_up.note_max_chars:
        problems.append(("note", f"at most {wrap_up.note_max_chars} characters"))
    unknown = sorted(set(body) - {*wrap_up.fields(), "note"})
    problems.extend((name, "not a field of the registration") for name in unknown)
    if problems:
        return None, problems
    outcome = chosen["outcome"][0] if chosen["outcome"] else ""
    serious = next((o.serious for o in wrap_up.outcome.options if o.code == outcome), True)
    return (
        Registration(
            contact_role=chosen["contact_role"][0] if chosen["contact_role"] else "",
            age_group=chosen["age_group"][0] if chosen["age_group"] else "",
            topics=chosen["topics"],
            outcome=outcome,
            serious=serious,
            note=str(note).strip(),
        ),
        [],
    )
