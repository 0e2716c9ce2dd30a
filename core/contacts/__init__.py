"""The address book: contacts (`service`), custom fields, lists, exports, and imports
from CSV and Excel (`importing`: read, map, check, write, background jobs).

May import: `core.infra`, `core.models`, `core.accounts`.
"""
