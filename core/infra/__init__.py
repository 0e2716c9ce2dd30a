"""Infrastructure every domain uses: settings, database engines and sessions, the clock,
errors, roles, signed tokens, task enqueueing, migrations, the shared rate limiter and
file retention.

May import: the standard library and third-party packages only, never `core.models` or a
domain package (checked by `.importlinter`).
"""
