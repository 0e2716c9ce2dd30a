"""Putting a checked chunk into `contact`: on PostgreSQL new contacts are copied straight
in (COPY), otherwise the chunk is staged into a temporary table and merged with a few
set-based statements; existing contacts are found, updated or reported, suppressed
addresses come in with their status, and the rows join the chosen list."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.errors import UniqueViolation
from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.orm import Session

from core.infra.permissions import Actor

if TYPE_CHECKING:
    pass  # what csv.writer() returns


from core.contacts.importing.check import _COPY_ESCAPES, _Checked
from core.contacts.importing.mapping import STANDARD_TARGETS

log = logging.getLogger(__name__)


_STAGE_COLUMNS = ("line", "email", *STANDARD_TARGETS[1:], "cf")
# What a checked row holds as COPY text, followed by what the writer adds.
_COPY_COLUMNS = ("email", *STANDARD_TARGETS[1:], "custom_fields")
_COPY_ADDED = ("status", "workspace_id", "source", "created_at", "updated_at")
_SUPPRESSED_STATUS = {"bounce": "bounced", "complaint": "complained"}


def _copy_escape(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


class _Stager:
    """How a chunk gets into `contact`.

    On PostgreSQL, unless updating, new contacts are copied straight into `contact`; once a
    chunk has met existing contacts (`probe`), each chunk's addresses are looked up first.
    Otherwise a chunk goes through a temporary table and a few set-based statements that
    merge it (executemany on SQLite)."""

    def __init__(
        self,
        session: Session,
        actor: Actor,
        update_existing: bool,
        list_id: int | None,
        consent_detail: str = "",
    ):
        self.session = session
        self.user_id = actor.user_id
        self.consent_detail = consent_detail[:300]
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.ws = actor.workspace_id
        self.update_existing = update_existing
        self.list_id = list_id
        self.probe = False

    def _exec(self, sql: str, **params: Any):
        statement = text(sql)
        if "now" in params:
            statement = statement.bindparams(bindparam("now", type_=DateTime(timezone=True)))
        return self.session.execute(statement, params)

    def existing(self, emails: list[str]) -> set[str]:
        """Those of `emails` that are contacts of the workspace."""
        return set(
            self._exec(
                "SELECT email FROM contact WHERE workspace_id = :ws AND email = ANY(:emails)",
                ws=self.ws,
                emails=emails,
            ).scalars()
        )

    def copy_new(self, emails: list[str], data: list[str], moment: datetime, source: str) -> bool:
        """COPY checked rows into `contact` as new contacts, in a savepoint; False (nothing
        written) when one of them is a contact already."""
        if not emails:
            return True
        reasons: dict[str, str] = {}
        if self._exec(
            "SELECT 1 FROM suppression WHERE workspace_id = :ws LIMIT 1", ws=self.ws
        ).first():
            reasons = dict(
                self._exec(
                    "SELECT email, reason FROM suppression "
                    "WHERE workspace_id = :ws AND email = ANY(:emails)",
                    ws=self.ws,
                    emails=emails,
                ).all()
            )
        stamp = moment.isoformat()
        tail = f"\t{self.ws}\t{_copy_escape(source)}\t{stamp}\t{stamp}\n"
        subscribed = "\tsubscribed" + tail
        if reasons:
            payload = "".join(
                text_
                + (
                    subscribed
                    if (reason := reasons.get(email)) is None
                    else f"\t{_SUPPRESSED_STATUS.get(reason, 'unsubscribed')}{tail}"
                )
                for email, text_ in zip(emails, data, strict=True)
            )
        else:
            payload = subscribed.join(data) + subscribed
        names = ", ".join(_COPY_COLUMNS + _COPY_ADDED)
        try:
            with self.session.begin_nested():
                raw = self.session.connection().connection.driver_connection
                assert raw is not None  # a checked-out connection has its driver connection
                with (
                    raw.cursor() as cursor,
                    cursor.copy(f"COPY contact ({names}) FROM STDIN") as copy,
                ):
                    copy.write(payload)
        except UniqueViolation:
            return False
        # COPY wrote an empty zone as ''; no zone is NULL (ix_contact_workspace_timezone
        # holds the zoned contacts, so this reads only those).
        self._exec(
            "UPDATE contact SET timezone = NULL WHERE workspace_id = :ws AND timezone = ''",
            ws=self.ws,
        )
        return True

    def prepare(self) -> None:
        columns = ", ".join(f"{c} {'bigint' if c == 'line' else 'text'}" for c in _STAGE_COLUMNS)
        if self.pg:
            self._exec(
                f"CREATE TEMP TABLE IF NOT EXISTS mw_import_stage ({columns}) ON COMMIT DELETE ROWS"
            )
            self._exec("TRUNCATE mw_import_stage")
        else:
            self._exec(f"CREATE TEMP TABLE IF NOT EXISTS mw_import_stage ({columns})")
            self._exec("DELETE FROM mw_import_stage")

    def stage(self, checked: _Checked) -> None:
        connection = self.session.connection()
        if self.pg:
            raw = connection.connection.driver_connection
            assert raw is not None  # a checked-out connection has its driver connection
            with raw.cursor() as cursor:
                names = ", ".join(_STAGE_COLUMNS[1:])  # the line is not needed here
                with cursor.copy(f"COPY mw_import_stage ({names}) FROM STDIN") as copy:
                    copy.write("\n".join(checked.data) + "\n")
            self._exec("ANALYZE mw_import_stage")
        else:
            marks = ", ".join("?" for _ in _STAGE_COLUMNS)
            connection.exec_driver_sql(
                f"INSERT INTO mw_import_stage VALUES ({marks})", checked.data
            )

    def update(self, moment: datetime) -> int:
        keep = ", ".join(
            f"{c} = CASE WHEN t.{c} <> '' THEN t.{c} ELSE contact.{c} END"
            for c in STANDARD_TARGETS[1:]
        )
        merged = (
            "contact.custom_fields || t.cf::jsonb"
            if self.pg
            else "json_patch(contact.custom_fields, t.cf)"
        )
        # Status is never touched: an update does not re-subscribe anybody.
        return self._exec(
            f"UPDATE contact SET {keep}, custom_fields = {merged}, updated_at = :now "
            "FROM mw_import_stage t WHERE contact.workspace_id = :ws AND contact.email = t.email",
            ws=self.ws,
            now=moment,
        ).rowcount

    def insert(self, moment: datetime, source: str) -> set[str]:
        """Create the staged addresses that are not contacts yet; returns those created."""
        columns = ", ".join(STANDARD_TARGETS[1:])
        # An empty zone is no zone (NULL): the workspace's is used.
        picked = ", ".join(
            f"NULLIF(t.{c}, '')" if c == "timezone" else f"t.{c}" for c in STANDARD_TARGETS[1:]
        )
        cf = "t.cf::jsonb" if self.pg else "t.cf"
        # Suppressed addresses come in with the status that matches why they are suppressed.
        return set(
            self._exec(
                f"INSERT INTO contact (workspace_id, email, {columns}, custom_fields, status, "
                "source, created_at, updated_at) "
                f"SELECT :ws, t.email, {picked}, {cf}, "
                "CASE WHEN s.reason IS NULL THEN 'subscribed' WHEN s.reason = 'bounce' THEN 'bounced' "
                "WHEN s.reason = 'complaint' THEN 'complained' ELSE 'unsubscribed' END, "
                ":source, :now, :now "
                "FROM mw_import_stage t LEFT JOIN suppression s "
                "ON s.workspace_id = :ws AND s.email = t.email "
                "WHERE NOT EXISTS (SELECT 1 FROM contact c WHERE c.workspace_id = :ws "
                "AND c.email = t.email) "
                "ON CONFLICT (workspace_id, email) DO NOTHING RETURNING email",
                ws=self.ws,
                now=moment,
                source=source,
            ).scalars()
        )

    def add_to_list(self, moment: datetime, emails: list[str] | None = None) -> None:
        """Put the chunk's contacts on the list: those staged, or those with `emails`."""
        if self.list_id is None:
            return
        source = (
            "FROM contact c WHERE c.workspace_id = :ws AND c.email = ANY(:emails) "
            if emails is not None
            else "FROM mw_import_stage t JOIN contact c "
            "ON c.workspace_id = :ws AND c.email = t.email WHERE true "
        )
        params = {"emails": emails} if emails is not None else {}
        self._exec(
            f"INSERT INTO list_membership (list_id, contact_id, created_at) "
            f"SELECT :list_id, c.id, :now {source}"
            "ON CONFLICT (list_id, contact_id) DO NOTHING",
            ws=self.ws,
            now=moment,
            list_id=self.list_id,
            **params,
        )

    def record_consent(self, moment: datetime, emails: list[str] | None = None) -> None:
        """Append the consent record of the chunk in one INSERT ... SELECT: a `subscribe`
        row (source import, the file name, the user) for each contact this chunk created
        subscribed, and for each subscribed contact it put on the list. Both are told by
        the chunk's moment: the new contact's created_at, the new membership's."""
        chunk = (
            "contact c WHERE c.workspace_id = :ws AND c.email = ANY(:emails)"
            if emails is not None
            # CROSS JOIN: SQLite then walks the chunk and looks each address up by the
            # unique index, instead of scanning the workspace by created_at.
            else "mw_import_stage t CROSS JOIN contact c "
            "WHERE c.workspace_id = :ws AND c.email = t.email"
        )
        lists = "[]" if self.list_id is None else f"[{int(self.list_id)}]"
        joined = ""
        new = "c.created_at = :now"
        if self.list_id is not None:
            chunk = chunk.replace(
                " WHERE ",
                " LEFT JOIN list_membership m ON m.list_id = :list_id AND m.contact_id = c.id"
                " WHERE ",
                1,
            )
            joined = " OR m.created_at = :now"
        list_ids = "CAST(:lists AS jsonb)" if self.pg else ":lists"
        params: dict[str, Any] = {"emails": emails} if emails is not None else {}
        if self.list_id is not None:
            params["list_id"] = self.list_id
        self._exec(
            "INSERT INTO consent (workspace_id, contact_id, list_ids, action, source, "
            "source_detail, user_id, created_at, ip, user_agent, consent_text, confirm_ip, "
            "confirm_user_agent) "
            f"SELECT :ws, c.id, {list_ids}, 'subscribe', 'import', :detail, :user_id, :now, "
            f"'', '', '', '', '' FROM {chunk} "
            f"AND c.status = 'subscribed' AND ({new}{joined})",
            ws=self.ws,
            now=moment,
            lists=lists,
            detail=self.consent_detail,
            user_id=self.user_id,
            **params,
        )
