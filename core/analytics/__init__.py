"""Reading what happened: campaign reports and the dashboard (`reports`), the DuckDB
rollups (`rollups`) and the Data page's sandboxed queries (`data_query`).

May import: `core.infra`, `core.models`, `core.contacts`, `core.abtest`.
"""
