"""The Data page's query, run in a child process that can be killed.

`python -m core.analytics.data_query` reads one request (JSON) on stdin and writes one pickled
answer on stdout. DuckDB's `interrupt()` cannot stop a single scalar expression
(`repeat('a', 500000000)` ran 54 s and took 2.5 GB), so the parent kills the child at the
time limit; the child runs with DuckDB's memory_limit and threads set and an address-space
limit, so a runaway query fails in its own process instead of the app's.
"""

from __future__ import annotations

import json
import pickle
import resource
import sys
from typing import Any

import duckdb

# Address space the child may map beyond DuckDB's own memory_limit: the interpreter,
# DuckDB's code and allocator arenas, and strings built outside its buffer manager.
HEADROOM_MB = 1024


def run(request: dict[str, Any]) -> dict[str, Any]:
    """The request's SELECT over this workspace's copy of the rollups."""
    memory_mb = int(request["memory_mb"])
    limit = (memory_mb + HEADROOM_MB) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    con = duckdb.connect(":memory:", config={"threads": int(request["threads"])})
    try:
        con.execute(f"SET memory_limit = '{memory_mb}MB'")
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"ATTACH {_quote(request['path'])} AS r (READ_ONLY)")
        for name in request["tables"]:
            where = "" if name == "rollup_info" else " WHERE workspace_id = ?"
            params = [] if name == "rollup_info" else [request["workspace_id"]]
            con.execute(f"CREATE TABLE main.{name} AS SELECT * FROM r.{name}{where}", params)
        con.execute("DETACH r")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        cursor = con.execute(request["sql"])
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchmany(int(request["row_limit"]) + 1)
        return {"columns": columns, "rows": rows}
    except duckdb.OutOfMemoryException as exc:
        return {"error": "memory", "detail": str(exc).splitlines()[0]}
    except MemoryError:
        return {"error": "memory", "detail": "out of memory"}
    except duckdb.Error as exc:
        return {"error": "query", "detail": str(exc).splitlines()[0]}
    finally:
        con.close()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main() -> None:
    answer = run(json.loads(sys.stdin.read()))
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
