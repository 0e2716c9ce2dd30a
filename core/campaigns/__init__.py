"""Campaigns: setup, scheduling and the actions the transition table allows (`service`),
who receives a campaign (`audience`), resends to non-openers (`resend`), the A/B split of its ledger (`split`), and queueing
its batch tasks (`dispatch`).

May import: `core.infra`, `core.models`, `core.mail`, `core.accounts`, `core.contacts`,
`core.ingest`, `core.segments`, `core.content`.
"""
