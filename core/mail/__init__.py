"""How a message leaves: MIME composition and sender checks (`compose`), the transports
(outbox, SMTP, SES v2) and the send-rate limiter shared across processes (`ratelimit`).

May import: `core.infra`, `core.models`.
"""
