"""Who acts at the desk, what each role may do, and the access log's record chain.

Pure decisions and types: the store keeps sessions and records, the web layer asks
these functions. An access-log record (NEN 7513) names who did what to which
conversation with what result, never what was written; each record carries the
hash of the one before, so an edited, inserted or removed record breaks the chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

Role = Literal["counsellor", "coordinator", "privacy-officer"]
Action = Literal[
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "list",
    "read",
    "claim",
    "reply",
    "transfer",
    "close",
    "note",
    "board",
    "move",
    "answers_edit",
    "reveal",
    "export",
    "admin_reload",
    "audit_read",
    "report_read",
    "report_export",
    "second_factor_changed",
    "password_changed",
]
Result = Literal["ok", "denied", "failed"]
ACTIONS: tuple[Action, ...] = get_args(Action)
RESULTS: tuple[Result, ...] = get_args(Result)
# How someone signed in: the audit's "how".
Method = Literal["password", "password+totp", "password+recovery", "oidc", "admin-token", "cli"]

CONVERSATION_WORK: frozenset[Action] = frozenset(
    {"list", "read", "claim", "reply", "transfer", "close", "note", "reveal", "export"}
)
PERMITTED: Mapping[Role, frozenset[Action]] = {
    "counsellor": CONVERSATION_WORK,
    # The wall board, moving waiting conversations to another open team (an overflow),
    # adding, editing and removing the team's standard answers in the console, and the
    # team's figures (a national coordinator: every team's and the country's).
    "coordinator": CONVERSATION_WORK | {"board", "move", "answers_edit", "report_read", "report_export"},
    # Least privilege: the privacy officer audits who read what, and reads no transcript.
    "privacy-officer": frozenset({"audit_read"}),
}


def permitted(role: str, action: Action) -> bool:
    allowed = PERMITTED.get(role)  # type: ignore[call-overload]
    return allowed is not None and action in allowed


@dataclass(frozen=True)
class Identity:
    """A signed-in person: an account of a realm ("desk", or "masker19:<channel>")."""

    realm: str
    account: str
    name: str
    team: str
    role: str
    method: Method


@dataclass(frozen=True)
class LocalAccount:
    """An account kept in configuration (a counsellor, a pharmacy): its password only as
    a hash. `second_factor`: whether this account must use TOTP."""

    realm: str
    id: str
    name: str
    team: str
    role: str
    password_hash: str
    second_factor: bool = False
    disabled: bool = False

    def identity(self, method: Method) -> Identity:
        return Identity(self.realm, self.id, self.name, self.team, self.role, method)

    @property
    def stamp(self) -> str:
        """Changes when the configuration changes what the account may do or its password:
        a session made under another stamp has ended."""
        text = f"{self.password_hash}|{self.team}|{self.role}|{self.disabled}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Session:
    """A live session as the store found it. `public_id` names it in lists and in
    DELETE /api/v1/sessions/{id}; the secret token is never kept, only its hash."""

    public_id: str
    identity: Identity
    stage: Literal["full", "enrol"]  # "enrol": only the second factor's enrolment is open
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def team_and_role(
    claims: Mapping[str, object], claim: str, mappings: Iterable[tuple[str, str, str]]
) -> tuple[str, str] | None:
    """The team and role an identity provider's user gets: the first mapping (value,
    team, role) whose value the claim holds (a string or a list of strings); None when
    no mapping matches, and the user gets no desk."""
    held = claims.get(claim)
    values = (
        {held}
        if isinstance(held, str)
        else {v for v in held if isinstance(v, str)}
        if isinstance(held, list)
        else set()
    )
    for value, team, role in mappings:
        if value in values:
            return team, role
    return None


AUDIT_FIELDS: Sequence[str] = (
    "seq",
    "at",
    "account",
    "method",
    "on_behalf_of",
    "team",
    "action",
    "conversation_id",
    "result",
    "reason",
)
GENESIS = "0" * 64


def record_digest(previous: str, record: Mapping[str, object]) -> str:
    """SHA-256 over the previous record's digest and this record's fields, in a fixed
    order, each length-prefixed so no two records spell the same bytes."""
    digest = hashlib.sha256(previous.encode())
    for name in AUDIT_FIELDS:
        value = record.get(name)
        text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
        data = text.encode()
        digest.update(len(data).to_bytes(4, "big") + data)
    return digest.hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str


def first_break(records: Iterable[Mapping[str, object]], head: tuple[int, str] | None) -> ChainBreak | None:
    """The first record (by seq) whose digest or link is wrong, or a missing tail; None
    when the chain holds. `head` is the (seq, digest) the log last wrote."""
    previous: Mapping[str, object] | None = None
    for record in records:
        seq = int(str(record["seq"]))
        if previous is not None:
            if seq != int(str(previous["seq"])) + 1:
                return ChainBreak(seq, f"records {int(str(previous['seq'])) + 1} to {seq - 1} are missing")
            if record["prev_hash"] != previous["hash"]:
                return ChainBreak(seq, "does not link to the record before it")
        if record_digest(str(record["prev_hash"]), record) != record["hash"]:
            return ChainBreak(seq, "its contents do not match its hash (edited)")
        previous = record
    if head is not None and head[0] > 0:
        last_seq = int(str(previous["seq"])) if previous is not None else 0
        if previous is None or last_seq != head[0] or previous["hash"] != head[1]:
            return ChainBreak(last_seq + 1, f"the log ends before record {head[0]}, the last one written")
    return None


@dataclass(frozen=True)
class SignedIn:
    """A session just started: its secret token (for the cookie or bearer header, shown
    once) and what the store keeps. `second_factor`: "ok" (used), "enrol" (none yet: the
    session can only enrol one), "off" (not asked of this account)."""

    token: str
    session: Session
    second_factor: Literal["ok", "enrol", "off"]
