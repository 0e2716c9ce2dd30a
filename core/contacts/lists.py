"""Lists: named groups of contacts. Deleting a list keeps its contacts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from core.infra.db import rowcount
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import LIST_OPT_INS, LIST_VISIBILITIES, Contact, ContactList, ListMembership

_BULK = 5000


@dataclass(frozen=True)
class ListInfo:
    id: int
    name: str
    description: str
    members: int
    visibility: str = "private"
    opt_in: str = "single"


def list_lists(session: Session, actor: Actor) -> list[ListInfo]:
    """The workspace's lists with their member counts, by name."""
    actor.require("read")
    counts = (
        select(ListMembership.list_id, func.count().label("n"))
        .group_by(ListMembership.list_id)
        .subquery()
    )
    rows = session.execute(
        select(ContactList, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.list_id == ContactList.id)
        .where(ContactList.workspace_id == actor.workspace_id)
        .order_by(ContactList.name)
    )
    return [
        ListInfo(lst.id, lst.name, lst.description, n, lst.visibility, lst.opt_in)
        for lst, n in rows
    ]


def get_list(session: Session, actor: Actor, list_id: int) -> ContactList:
    actor.require("read")
    lst = session.get(ContactList, list_id)
    if lst is None or lst.workspace_id != actor.workspace_id:
        raise NotFound("No such list in this workspace.")
    return lst


def find_list(session: Session, actor: Actor, name: str) -> ContactList | None:
    actor.require("read")
    return session.scalar(
        select(ContactList).where(
            ContactList.workspace_id == actor.workspace_id, ContactList.name == name.strip()
        )
    )


def _check_name(session: Session, actor: Actor, name: str, own_id: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("A list needs a name.")
    if len(name) > 200:
        raise ValidationFailed("A list name has at most 200 characters.")
    other = find_list(session, actor, name)
    if other is not None and other.id != own_id:
        raise ValidationFailed(f"There is already a list called {name!r}.")
    return name


def create_list(session: Session, actor: Actor, name: str, description: str = "") -> ContactList:
    actor.require("edit")
    lst = ContactList(
        workspace_id=actor.workspace_id,
        name=_check_name(session, actor, name),
        description=description or "",
    )
    session.add(lst)
    session.flush()
    return lst


def ensure_list(session: Session, actor: Actor, name: str) -> ContactList:
    """The list called `name`, created when it does not exist."""
    return find_list(session, actor, name) or create_list(session, actor, name)


def rename_list(
    session: Session, actor: Actor, list_id: int, name: str, description: str | None = None
) -> ContactList:
    actor.require("edit")
    lst = get_list(session, actor, list_id)
    lst.name = _check_name(session, actor, name, own_id=lst.id)
    if description is not None:
        lst.description = description
    session.flush()
    return lst


def set_list_options(
    session: Session, actor: Actor, list_id: int, *, visibility: str, opt_in: str
) -> ContactList:
    """Public lists are offered by forms and the preference centre; a double opt-in list
    is joined from a form only through the confirmation link (issue 17)."""
    actor.require("edit")
    if visibility not in LIST_VISIBILITIES:
        raise ValidationFailed(f"Visibility is one of {', '.join(LIST_VISIBILITIES)}.")
    if opt_in not in LIST_OPT_INS:
        raise ValidationFailed(f"Opt-in is one of {', '.join(LIST_OPT_INS)}.")
    lst = get_list(session, actor, list_id)
    lst.visibility, lst.opt_in = visibility, opt_in
    session.flush()
    return lst


def delete_list(session: Session, actor: Actor, list_id: int) -> None:
    """Delete the list and its memberships; the contacts stay."""
    actor.require("edit")
    lst = get_list(session, actor, list_id)
    session.execute(delete(ListMembership).where(ListMembership.list_id == lst.id))
    session.delete(lst)
    session.flush()


def _own_contact_ids(session: Session, actor: Actor, contact_ids: Iterable[int]) -> list[int]:
    ids = sorted({int(i) for i in contact_ids})
    own: list[int] = []
    for start in range(0, len(ids), _BULK):
        chunk = ids[start : start + _BULK]
        own += session.scalars(
            select(Contact.id).where(
                Contact.workspace_id == actor.workspace_id, Contact.id.in_(chunk)
            )
        )
    return own


def add_members(session: Session, actor: Actor, list_id: int, contact_ids: Iterable[int]) -> int:
    """Add contacts to a list (those already in it are left alone); returns how many were added."""
    actor.require("edit")
    lst = get_list(session, actor, list_id)
    ids = _own_contact_ids(session, actor, contact_ids)
    added = 0
    for start in range(0, len(ids), _BULK):
        chunk = ids[start : start + _BULK]
        present = set(
            session.scalars(
                select(ListMembership.contact_id).where(
                    ListMembership.list_id == lst.id, ListMembership.contact_id.in_(chunk)
                )
            )
        )
        rows = [{"list_id": lst.id, "contact_id": cid} for cid in chunk if cid not in present]
        if rows:
            session.execute(insert(ListMembership), rows)
            added += len(rows)
    session.flush()
    return added


def remove_members(session: Session, actor: Actor, list_id: int, contact_ids: Iterable[int]) -> int:
    actor.require("edit")
    lst = get_list(session, actor, list_id)
    ids = sorted({int(i) for i in contact_ids})
    removed = 0
    for start in range(0, len(ids), _BULK):
        result = session.execute(
            delete(ListMembership).where(
                ListMembership.list_id == lst.id,
                ListMembership.contact_id.in_(ids[start : start + _BULK]),
            )
        )
        removed += rowcount(result)
    return removed


def lists_of(session: Session, actor: Actor, contact_id: int) -> list[ContactList]:
    actor.require("read")
    return list(
        session.scalars(
            select(ContactList)
            .join(ListMembership, ListMembership.list_id == ContactList.id)
            .where(
                ListMembership.contact_id == contact_id,
                ContactList.workspace_id == actor.workspace_id,
            )
            .order_by(ContactList.name)
        )
    )


def set_contact_lists(
    session: Session, actor: Actor, contact_id: int, list_ids: Iterable[int]
) -> None:
    """Make the contact a member of exactly `list_ids`."""
    actor.require("edit")
    wanted = {int(i) for i in list_ids}
    current = {lst.id for lst in lists_of(session, actor, contact_id)}
    for list_id in wanted - current:
        add_members(session, actor, list_id, [contact_id])
    for list_id in current - wanted:
        remove_members(session, actor, list_id, [contact_id])
