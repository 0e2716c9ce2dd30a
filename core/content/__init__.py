"""Templates, their sandboxed rendering (with personalisation and tracking), and the AI
writing assistant.

May import: `core.infra`, `core.models`, `core.contacts`.
"""
