"""Sending: the ledger snapshot, the batch pipeline with its leases, rate limit and
recovery, and test sends of a campaign (`pipeline`); building each message fast and the
per-process transport and rate limiter (`compose`).

May import: everything below it, `core.campaigns` included.
"""
