"""`python -m core segment-count` from the shell."""

from __future__ import annotations

import json

import pytest

from core.infra.db import session_scope
from core.infra.permissions import Actor
from core.models import Contact
from core.segments import create_segment
from tests.helpers import make_workspace
from tests.processes import PROCESS_BACKEND
from tests.test_cli import run_cli

pytestmark = pytest.mark.parametrize("backend", [PROCESS_BACKEND])  # the CLI: one backend


def test_segment_count_from_a_file_and_a_saved_segment(live_db, tmp_path):
    with session_scope() as session:
        ws = make_workspace(session, "acme")
        for city in ("Paris", "paris", "Lyon"):
            session.add(
                Contact(
                    workspace_id=ws.id, email=f"{city.lower()}{len(city)}{city[0]}@x.io", city=city
                )
            )
        other = make_workspace(session, "other")
        session.add(Contact(workspace_id=other.id, email="p@x.io", city="Paris"))
        session.flush()
        segment = create_segment(
            session,
            Actor.system(ws.id),
            "Lyon",
            {"rules": [{"field": "city", "op": "eq", "value": "lyon"}]},
        )
        segment_id = segment.id
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps({"match": "all", "rules": [{"field": "city", "op": "eq", "value": "PARIS"}]})
    )

    done = run_cli(tmp_path, live_db, "segment-count", "--workspace", "acme", "--rules", str(rules))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2"

    done = run_cli(
        tmp_path, live_db, "segment-count", "--workspace", "acme", "--segment", str(segment_id)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "1"

    rules.write_text(json.dumps({"rules": [{"field": "shoe", "op": "eq", "value": "x"}]}))
    bad = run_cli(tmp_path, live_db, "segment-count", "--workspace", "acme", "--rules", str(rules))
    assert bad.returncode == 2 and "unknown field 'shoe'" in bad.stderr
    bad = run_cli(
        tmp_path, live_db, "segment-count", "--workspace", "other", "--segment", str(segment_id)
    )
    assert bad.returncode == 2 and "No such segment" in bad.stderr
