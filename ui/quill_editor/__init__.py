"""The visual editor: Quill 2 in a small Streamlit component of our own.

streamlit-quill 0.0.3 returns only the editor's content: it cannot insert at the cursor,
and it showed variables as raw `{{ … }}` text. This component puts the workspace's
variables and an image inserter in Quill's toolbar and inserts at Quill's selection in
the browser, shows template tags as chips, and hands back HTML whose tags are the exact
Jinja source. Its frontend (`frontend/`) is static: index.html, editor.js, editor.css and
Quill's own built files (npm `quill` 2.0.3, BSD-3, see frontend/QUILL-LICENSE.txt), served
by Streamlit from this folder, with no build step and nothing fetched at run time.

The HTML a template holds is user content: it enters Quill only through Quill's clipboard
converter (an inert DOMParser document, known formats only), so none of its scripts or
event handlers run in the app's origin.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streamlit.components.v1 import declare_component

FRONTEND = Path(__file__).parent / "frontend"
_component = declare_component("quill_editor", path=str(FRONTEND))


def quill_editor(
    value: str,
    *,
    variables: Iterable[Any],
    key: str,
    disabled: bool = False,
    height: int = 360,
) -> str | None:
    """The body as HTML once the user has changed it, else None (keep `value` as it is).

    `variables` are `core.content.templates.Variable`s (name, label, group). A new `key`
    loads `value` afresh; the same key keeps what the user is typing across reruns."""
    return _component(
        value=value,
        variables=[{"name": v.name, "label": v.label, "group": v.group} for v in variables],
        version=key,
        disabled=disabled,
        height=height,
        key=key,
        default=None,
    )
