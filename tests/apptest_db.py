"""Committed test data for tests that run the app or other processes (live_db)."""

from __future__ import annotations

from core.infra.db import session_scope
from tests.helpers import PASSWORD, make_user, make_workspace


def seed_user(role: str = "owner", slug: str = "acme", password: str = PASSWORD) -> str:
    """A committed user (and workspace) in settings.database_url; returns the email."""
    with session_scope() as session:
        user = make_user(session, make_workspace(session, slug), role=role, password=password)
        return user.email
