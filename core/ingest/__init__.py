"""What comes back from the world: SNS verification (`sns`), SES events and the inbox drain
(`events`), open and click tracking and one-click unsubscribe (`tracking`).

May import: `core.infra`, `core.models`, `core.contacts`.
"""
