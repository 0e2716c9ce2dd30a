"""Sending: the ledger snapshot, the batch pipeline with its leases and rate limit
(`pipeline`), MIME composition and sender checks (`mail`), and the transports (outbox,
SMTP, SES).

May import: `core.infra`, `core.models`, `core.content`, `core.campaigns`, `core.ingest`
(tracking links).
"""
