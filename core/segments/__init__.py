"""Segments: the rule model, its validation, the SQL compiler and the service (`rules`).

May import: `core.infra`, `core.models`, `core.contacts`.
"""
