"""Campaigns: setup, audience (`audience`: who receives a campaign), scheduling, the
actions the transition table allows, test sends.

May import: `core.infra`, `core.models`, `core.contacts`, `core.segments`, `core.content`,
`core.sending` and `core.abtest` (the last two at call time: they build on campaigns).
"""
