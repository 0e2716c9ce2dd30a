"""User HTML reaches the screen only inside an iframe whose sandbox is empty (issue 14.1).

`st.iframe`, `components.html` and `st.html(..., unsafe_allow_javascript=True)` run their
content with scripts in (or same-origin with) the app, where a script can act as the
signed-in person. So only three modules may call them: ui/preview.py, which wraps the
email in an inner `<iframe sandbox="">`, ui/cookies.py, whose script is ours, and
ui/quill_editor, whose frontend is ours and takes template HTML only as Quill content."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ui.preview import preview_frame

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "ui/preview.py": {"iframe"},
    "ui/cookies.py": {"html", "unsafe_allow_javascript"},
    # The visual editor: our own static frontend (ui/quill_editor/frontend); template HTML
    # enters it only through Quill's clipboard converter, never as markup of the page
    # (tests/browser/test_template_editor.py checks that a template's script cannot run).
    "ui/quill_editor/__init__.py": {"declare_component", "components.v1"},
}
RISKY_CALLS = {"iframe", "html", "declare_component"}
RISKY_KEYWORDS = {"unsafe_allow_html", "unsafe_allow_javascript"}


def _risky_uses(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in RISKY_CALLS:
                found.add(name)
            found |= {k.arg for k in node.keywords if k.arg in RISKY_KEYWORDS}
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("components.v1"):
            found.add("components.v1")
        if isinstance(node, ast.Import) and any(
            a.name.endswith("components.v1") for a in node.names
        ):
            found.add("components.v1")
    return found


def test_only_the_preview_and_the_cookie_writer_can_show_raw_html():
    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").rglob("*.py")]
    offenders = {}
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        uses = _risky_uses(path) - ALLOWED.get(relative, set())
        if uses:
            offenders[relative] = sorted(uses)
    assert not offenders, f"raw HTML shown outside ui/preview.py: {offenders}"


def test_the_preview_keeps_the_email_in_an_empty_sandbox():
    hostile = '<script>alert(document.cookie)</script>"></iframe><script>x()</script>'
    frame = preview_frame(hostile, 640)
    iframes = re.findall(r"<iframe\b[^>]*>", frame)
    assert len(iframes) == 1, "the email must not be able to close the frame and add markup"
    assert 'sandbox=""' in iframes[0]
    assert "<script>" not in frame, "the email is only inside the escaped srcdoc attribute"
