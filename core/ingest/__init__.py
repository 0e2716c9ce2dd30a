"""What comes back from the world: SNS verification (`sns`), the webhook's inbox and its
drain (`inbox`), SES event parsing and matching to the ledger (`ses`), storing events once
with their consequences (`store`, which states the events contract), our own opens, clicks
and unsubscribes (`own`), and signed tracking and unsubscribe links (`tracking`).

May import: `core.infra`, `core.models`, `core.contacts`, `core.deliverability` (the guard
runs in the drain).
"""
