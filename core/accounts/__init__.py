"""Workspaces, users, passwords, sign-in lockout, sessions, password reset, invitations.

May import: `core.infra`, `core.models`, `core.mail.compose` (system mails).
"""
