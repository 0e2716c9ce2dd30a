"""A/B tests: settings, the seeded split, statistics, decisions, the release of the held
rest, and the report (`engine`).

May import: `core.infra`, `core.models`, `core.campaigns`, `core.sending`.
"""
