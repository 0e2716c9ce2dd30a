"""Growing the audience with consent (issue 17): signup forms (`service`), what a
submission and a confirmation do (`signup`), the subscriptions of many signups at once
(`subscribe`), the inbox the public service appends to and the worker drains (`inbox`),
the shared abuse limits (`throttle`), the confirmation and welcome mails (`mail`), the
consent record and retention (`consent`).

Owns the `form`, `consent`, `form_throttle` and `signup_inbox` tables and the
`unconfirmed` contact status.
May import: `core.infra`, `core.models`, `core.mail`, `core.accounts`, `core.contacts`,
`core.ingest` (unsubscribe links), `core.content` (the welcome template).
"""
