"""User text inside Markdown: shown as typed, never as links, images, colours or LaTeX.

Streamlit renders Markdown in st.markdown, st.write, st.caption, titles, alerts, tab and
widget labels. A campaign named `![x](https://evil.example/t.gif)` or `[Reset your
password](https://evil.example)` would load an image or show a link there; `md()`
backslash-escapes every ASCII punctuation mark CommonMark and Streamlit's directives
(`:red[...]`, `:material/x:`, `$...$`) give meaning to."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^%@/])")


def md(value: object) -> str:
    """`value` as literal text in Markdown (line breaks kept as spaces)."""
    text = " ".join(str(value).split())
    return _SPECIAL.sub(r"\\\1", text)
