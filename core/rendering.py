"""Rendering templates for mail: one sandboxed path for preview, test sends and campaigns.

Templates are compiled once (subject, HTML, text) and rendered per recipient with a plain
dict of variables. Jinja's sandbox refuses dunder attributes, imports and unsafe calls;
HTML is autoescaped, subject and text are not (they are not HTML).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import css_inline
import html2text
from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from core.errors import ValidationFailed

STANDARD_VARIABLES = ("email", "first_name", "last_name", "company", "city", "country", "phone")
SYSTEM_VARIABLES = ("unsubscribe_url", "workspace_name", "postal_address", "campaign_name")
# String methods a template may call ({{ first_name.title() }}); every other call is refused.
SAFE_STR_METHODS = frozenset(
    [
        "capitalize",
        "lower",
        "upper",
        "title",
        "strip",
        "lstrip",
        "rstrip",
        "replace",
        "startswith",
        "endswith",
        "split",
    ]
)
FOOTER = (
    '<div style="margin-top:24px;font-size:12px;color:#666;text-align:center">'
    "{{ workspace_name }}{% if postal_address %} · {{ postal_address }}{% endif %}<br>"
    '<a href="{{ unsubscribe_url }}" style="color:#666">Unsubscribe</a></div>'
)
TEXT_FOOTER = (
    "\n\n--\n{{ workspace_name }}\n{{ postal_address }}\nUnsubscribe: {{ unsubscribe_url }}\n"
)


class TemplateProblem(ValidationFailed):
    """A template that does not compile or render, with the line when known."""

    def __init__(self, message: str, line: int | None = None, part: str = "html") -> None:
        where = f"{part}, line {line}" if line else part
        super().__init__(f"Template error in the {where}: {message}")
        self.line = line
        self.part = part


class _Sandbox(ImmutableSandboxedEnvironment):
    def is_safe_callable(self, obj: Any) -> bool:
        if obj is self.globals.get("range"):
            return True
        owner = getattr(obj, "__self__", None)
        return isinstance(owner, str) and getattr(obj, "__name__", "") in SAFE_STR_METHODS


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(autoescape=autoescape, undefined=ChainableUndefined)
    env.globals = {"range": env.globals["range"]}
    return env


HTML_ENV = _environment(autoescape=True)
TEXT_ENV = _environment(autoescape=False)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML body (links kept as URLs)."""
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.protect_links = True
    return converter.handle(html).strip() + "\n"


def _uses(source: str, name: str) -> bool:
    return re.search(r"\{\{[^}]*\b" + re.escape(name) + r"\b", source) is not None


def _add_footer(html: str) -> str:
    match = re.search(r"</body\s*>", html, re.IGNORECASE)
    if match:
        return html[: match.start()] + FOOTER + html[match.start() :]
    return html + FOOTER


def _compile(env: _Sandbox, source: str, part: str):  # noqa: ANN202
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or str(exc), exc.lineno, part) from exc


class CompiledTemplate:
    """Subject, HTML and text compiled once; `render` is the per-recipient hot path."""

    def __init__(self, subject: str, html: str, text: str | None, footer: bool = True) -> None:
        self.subject_source = subject
        self.html_source = html
        text_source = text if text and text.strip() else html_to_text(html)
        if footer and not _uses(html, "unsubscribe_url"):
            html = _add_footer(html)
        if footer and not _uses(text_source, "unsubscribe_url"):
            text_source += TEXT_FOOTER
        self._subject = _compile(TEXT_ENV, subject, "subject")
        self._html = _compile(HTML_ENV, html, "html")
        self._text = _compile(TEXT_ENV, text_source, "text")
        self._inline_css = bool(re.search(r"<style|<link", html, re.IGNORECASE))
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False)

    def render(self, variables: Mapping[str, Any]) -> Rendered:
        try:
            subject = " ".join(self._subject.render(variables).split())
            html = self._html.render(variables)
            text = self._text.render(variables)
        except SecurityError as exc:
            raise TemplateProblem(f"not allowed in a template ({exc})") from exc
        except UndefinedError as exc:
            raise TemplateProblem(str(exc)) from exc
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise TemplateProblem(f"{type(exc).__name__}: {exc}") from exc
        if self._inline_css:
            html = self._inliner.inline(html)
        return Rendered(subject=subject, html=html, text=text)


@functools.lru_cache(maxsize=256)
def compile_template(
    subject: str, html: str, text: str | None = None, footer: bool = True
) -> CompiledTemplate:
    """Compile (cached by content); TemplateProblem names the part and line of an error."""
    return CompiledTemplate(subject, html, text, footer)


def contact_variables(
    contact: Any,
    *,
    workspace_name: str = "",
    postal_address: str = "",
    campaign_name: str = "",
    unsubscribe_url: str = "",
) -> dict[str, Any]:
    """The variables for one recipient. Empty values are left out, so that
    `{{ first_name | default("there") }}` falls back for a blank name too."""
    get = contact.get if isinstance(contact, Mapping) else lambda k: getattr(contact, k, None)
    variables: dict[str, Any] = {
        "workspace_name": workspace_name,
        "postal_address": postal_address,
        "campaign_name": campaign_name,
        "unsubscribe_url": unsubscribe_url,
    }
    for name in STANDARD_VARIABLES:
        value = get(name)
        if value not in (None, ""):
            variables[name] = value
    custom = get("custom_fields") or {}
    variables["custom_fields"] = {k: v for k, v in custom.items() if v not in (None, "")}
    return variables


def referenced_names(source: str) -> set[str]:
    """Variable names a template reads: top-level names and `custom_fields.key` pairs."""
    ast = HTML_ENV.parse(source)
    found: set[str] = set()
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "custom_fields":
            found.add(f"custom_fields.{node.attr}")
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load":
            found.add(node.name)
    return found
