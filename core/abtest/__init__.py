"""A/B tests: settings, statistics, decisions, the release of the held rest, and the
report (`engine`). The split itself is `core.campaigns.split` (the snapshot needs it).

May import: everything below it, `core.campaigns` included; never `core.sending`.
"""
