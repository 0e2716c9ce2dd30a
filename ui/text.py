"""User text inside Markdown: shown as typed, never as links, images, colours or LaTeX.

Streamlit renders Markdown in st.markdown, st.write, st.caption, titles, alerts, tab and
widget labels. A campaign named `![x](https://evil.example/t.gif)` or `[Reset your
password](https://evil.example)` would load an image or show a link there; `md()`
backslash-escapes every ASCII punctuation mark CommonMark and Streamlit's directives
(`:red[...]`, `:material/x:`, `$...$`) give meaning to.

Escaping does not stop GitHub-flavoured autolinks: Streamlit's Markdown turns a bare
`https://…` or `www.…` in the parsed text into a link after the escapes are gone. `md()`
puts an invisible word joiner (U+2060) inside `://` and after `www`, which breaks those
patterns and shows the same characters. A bare email address still becomes a `mailto:`
link to exactly the address shown, which is harmless and keeps it copyable."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^%@/])")
_JOINER = "\u2060"
# After escaping: "https\:\/\/" and "www\."
_SCHEME = re.compile(r"(?<=\\:)(?=\\/\\/)")
_WWW = re.compile(r"(?i)(?<=www)(?=\\\.)")


def md(value: object) -> str:
    """`value` as literal text in Markdown (line breaks kept as spaces)."""
    text = " ".join(str(value).split())
    escaped = _SPECIAL.sub(r"\\\1", text)
    return _WWW.sub(_JOINER, _SCHEME.sub(_JOINER, escaped))
