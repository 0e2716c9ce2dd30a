"""`python -m core create-template` from the shell."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Template
from tests.apptest_db import seed_user
from tests.processes import PROCESS_BACKEND
from tests.test_cli import run_cli

pytestmark = pytest.mark.parametrize("backend", [PROCESS_BACKEND])  # the CLI: one backend


def test_create_template_validates_and_prints_the_id(live_db, tmp_path):
    seed_user(slug="acme")
    html = tmp_path / "welcome.html"
    html.write_text('<p>Hi {{ first_name | default("there") }} {{ nickname }}</p>')
    text = tmp_path / "welcome.txt"
    text.write_text("Hi {{ first_name }}")
    args = ["create-template", "--workspace", "acme", "--name", "Welcome"]
    done = run_cli(tmp_path, live_db, *args, "--subject", "Hi {{ first_name }}",
                   "--html", str(html), "--text", str(text))  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("nickname" in line and line.startswith("warning:") for line in lines)
    template_id = int(lines[-1])
    assert json.loads(lines[-2]) == {"template_id": template_id, "name": "Welcome"}
    with session_scope() as session:
        saved = session.get(Template, template_id)
        assert (saved.subject, saved.text) == ("Hi {{ first_name }}", "Hi {{ first_name }}")

    html.write_text("<p>ok</p>\n<p>{% for x in items %}{{ x }}</p>")
    bad = run_cli(tmp_path, live_db, "create-template", "--workspace", "acme", "--name", "Bad",
                  "--subject", "Hi", "--html", str(html))  # fmt: skip
    assert bad.returncode == 2
    assert "html, line 2" in bad.stderr and "endfor" in bad.stderr
    with session_scope() as session:
        assert session.scalars(select(Template.name)).all() == ["Welcome"]
