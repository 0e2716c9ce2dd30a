"""Sending: the ledger snapshot, the batch pipeline with its leases, rate limit and
recovery, and test sends of a campaign (`pipeline`).

May import: everything below it, `core.campaigns` included.
"""
