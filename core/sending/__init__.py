"""Sending: the ledger snapshot, the batch pipeline with its leases, rate limit and
recovery, and test sends of a campaign (`pipeline`); what a campaign's messages share
(`compose`: the bytes come from `core.mail.compose.MimeBuilder`, as every message's do) and
the per-process transport and rate limiter.

May import: everything below it, `core.campaigns` included.
"""
