"""Pages render and call core: they import no database, worker or web-service code.

`pages/` is Streamlit's folder of screens, not a package, so the import contracts in
`.importlinter` cannot see it; this test reads every page (and app.py) instead, including
imports inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"core", "ui", "streamlit", "pandas", "plotly"} | set(sys.stdlib_module_names)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_pages_import_only_core_ui_and_display_libraries():
    files = [*sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py"]
    assert len(files) > 10
    wrong = {f.name: sorted(_imports(f) - ALLOWED) for f in files if _imports(f) - ALLOWED}
    assert not wrong, f"pages reach past core: {wrong}"
