"""Rendering templates for mail: one sandboxed path for preview, test sends and campaigns.

One module on purpose (about 700 lines): the sandbox, its budget and the link and pixel
rewriting are one security boundary, read and reviewed together.

How to use it (the sending pipeline, preview and test sends all go through here)::

    from core.content.rendering import MailContext, compile_template, render_for_contact

    compiled = compile_template(variant.subject, variant.html, variant.text)  # once per variant
    ctx = MailContext(workspace_id=ws.id, workspace_name=ws.name,
                      postal_address=ws.postal_address, campaign_name=campaign.name)
    for contact, message in batch:                                            # per recipient
        out = render_for_contact(compiled, contact, ctx, message_id=message.id,
                                 track_opens=campaign.track_opens,
                                 track_clicks=campaign.track_clicks)
        out.subject, out.html, out.text                                       # ready for MIME

- `compile_template(subject, html, text=None, footer=True)` compiles the three parts once
  (cached by content) and raises `TemplateProblem` (a `ValidationFailed`) naming the part and
  line of a syntax error or of a forbidden construct. It generates the text part from the
  HTML when `text` is empty, appends a footer (workspace, postal address, unsubscribe link)
  to the HTML and the text when they do not use `{{ unsubscribe_url }}`, and inlines the
  CSS of `<style>` blocks into `style=""` attributes at compile time (falling back to
  inlining each rendered message when the markup around the template tags does not allow
  it, e.g. a tag inside `<title>`).
- `render_for_contact(compiled, contact, ctx, ...)` builds the variables of one contact (a
  `Contact` row or a mapping with the same keys, `custom_fields` a dict), the signed
  unsubscribe URL and, when asked, rewrites http(s) links to signed click URLs and adds the
  open pixel. It returns `Rendered(subject, html, text)`; a failure at render time raises
  `TemplateProblem`. `CompiledTemplate.render(variables)` is the lower-level call.
- `check_template(subject, html, text, known)` is what editors call before saving:
  compile errors raise, names no field defines come back as warnings.

Safety: Jinja's ImmutableSandboxedEnvironment; HTML is autoescaped (subject and text are not
HTML). Attributes and items whose names start with an underscore, `import`/`include`/
`extends`, and every callable except `range` and a few string methods are refused, at
compile time where they are visible and by the sandbox at render time; string and list
repetition and powers are capped, so a template cannot exhaust memory.
"""

from __future__ import annotations

import functools
import html as html_lib
import operator
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import css_inline
import html2text
from jinja2 import ChainableUndefined, TemplateSyntaxError, meta, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from core.contacts.fields import CONTACT_COLUMNS
from core.infra.errors import ValidationFailed
from core.ingest import tracking

STANDARD_VARIABLES = CONTACT_COLUMNS
SYSTEM_VARIABLES = (
    "unsubscribe_url",
    "preferences_url",
    "workspace_name",
    "postal_address",
    "campaign_name",
)
# Names Jinja itself provides inside templates.
BUILTIN_NAMES = frozenset(["range", "loop", "custom_fields"])
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
# A rendered string or list may not grow beyond this through `*` (memory exhaustion).
MAX_REPEAT = 10_000
# The budget of one render (subject, HTML and text together): any text a template builds,
# the whole output, the loop iterations over range(), and the time it may take.
MAX_TEXT = 200_000
MAX_OUTPUT = 2_000_000
MAX_STEPS = 100_000
MAX_SECONDS = 2.0
MAX_INT_BITS = 4096
# Filters that build text of a size the template chooses: not offered in templates.
REMOVED_FILTERS = ("center", "indent", "format", "wordwrap", "filesizeformat", "xmlattr")
FOOTER = (
    '<div style="margin-top:24px;font-size:12px;color:#666;text-align:center">'
    "{{ workspace_name }}{% if postal_address %} · {{ postal_address }}{% endif %}<br>"
    '<a href="{{ unsubscribe_url }}" style="color:#666">Unsubscribe</a>'
    '{% if preferences_url %} · <a href="{{ preferences_url }}" style="color:#666">'
    "Email preferences</a>{% endif %}</div>"
)
TEXT_FOOTER = (
    "\n\n--\n{{ workspace_name }}\n{{ postal_address }}\nUnsubscribe: {{ unsubscribe_url }}\n"
    "{% if preferences_url %}Email preferences: {{ preferences_url }}\n{% endif %}"
)
_PLACEHOLDER = "<!--mw-tpl-{}-->"
_PLACEHOLDER_RE = re.compile(r"<!--mw-tpl-(\d+)-->")
_HREF_RE = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'<>\s]+)\2""", re.IGNORECASE)
_BODY_END_RE = re.compile(r"</body\s*>", re.IGNORECASE)
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)|<!--mw-tpl-\d+-->")
_SKELETON_SKIP = frozenset(["html", "head", "body", "style", "link", "meta"])


class TemplateProblem(ValidationFailed):
    """A template that does not compile or render, with the line when known."""

    def __init__(self, message: str, line: int | None = None, part: str = "html") -> None:
        where = f"{part}, line {line}" if line else part
        super().__init__(f"Template error in the {where}: {message}")
        self.message = message
        self.line = line
        self.part = part


class _LimitExceeded(SecurityError):
    """A render went past its budget (size, loop steps or time)."""


class TemplateTooCostly(TemplateProblem):
    """Rendering would take more memory or time than an email may."""


class _Budget(threading.local):
    steps = 0
    deadline = 0.0


_budget = _Budget()


def _start_budget() -> None:
    _budget.steps = 0
    _budget.deadline = time.monotonic() + MAX_SECONDS


def _tick() -> None:
    _budget.steps += 1
    if _budget.steps > MAX_STEPS:
        raise _LimitExceeded(f"the template loops more than {MAX_STEPS:,} times")
    if not _budget.steps & 1023 and time.monotonic() > _budget.deadline:
        raise _LimitExceeded(f"the template takes longer than {MAX_SECONDS:g} seconds")


def _checked(value: Any) -> Any:
    """`value` if it is of a size a template may build."""
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_TEXT:
        raise _LimitExceeded(f"a text or list would be longer than {MAX_TEXT:,}")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _LimitExceeded("a number would be too large")
    return value


class _Range:
    """range() for templates: Jinja's capped range, each step counted against the budget."""

    def __init__(self, *args: Any) -> None:
        self._range = safe_range(*args)

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Any:
        for value in self._range:
            _tick()
            yield value


def _join_capped(pieces: Iterable[str]) -> str:
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_OUTPUT:
            raise _LimitExceeded(
                f"the rendered email would be larger than {MAX_OUTPUT:,} characters"
            )
        out.append(piece)
    return "".join(out)


class _Generator(CodeGenerator):
    """Jinja's code generator, with every `~` concatenation checked for size."""

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.checked(")
        super().visit_Concat(node, frame)
        self.write(")")


def _capped_mul(a: Any, b: Any) -> Any:
    for seq, n in ((a, b), (b, a)):
        too_long = isinstance(seq, (str, list, tuple)) and isinstance(n, int)
        if too_long and len(seq) * max(n, 0) > MAX_REPEAT:
            raise _LimitExceeded("a repeated text or list would be too long")
    return operator.mul(a, b)


def _capped_pow(a: Any, b: Any) -> Any:
    if isinstance(b, (int, float)) and abs(b) > 100:
        raise _LimitExceeded("exponent too large")
    return operator.pow(a, b)


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "+", "-", "%", "/", "//"])
    code_generator_class = _Generator

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            return _checked(_capped_mul(left, right))
        if operator_ == "**":
            return _checked(_capped_pow(left, right))
        if operator_ == "%" and isinstance(left, str):
            raise SecurityError("%-formatting of text is not allowed")
        growing = operator_ == "+" and isinstance(left, (str, list, tuple))
        if growing and hasattr(right, "__len__") and len(left) + len(right) > MAX_TEXT:
            raise _LimitExceeded(f"a text or list would be longer than {MAX_TEXT:,}")
        return _checked(super().call_binop(context, operator_, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def checked(self, value: Any) -> Any:
        return _checked(value)

    def is_safe_callable(self, obj: Any) -> bool:
        if obj is self.globals.get("range"):
            return True
        owner = getattr(obj, "__self__", None)
        return isinstance(owner, str) and getattr(obj, "__name__", "") in SAFE_STR_METHODS


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(autoescape=autoescape, undefined=ChainableUndefined)
    env.globals = {"range": _Range}
    for name in REMOVED_FILTERS:
        env.filters.pop(name, None)
    # Every filter's result is checked for size too (replace, join, list, ...).
    for name, function in list(env.filters.items()):
        env.filters[name] = _checked_filter(function)
    return env


def _checked_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        return _checked(function(*args, **kwargs))

    return checked


HTML_ENV = _environment(autoescape=True)
TEXT_ENV = _environment(autoescape=False)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class MailContext:
    """What every message of one send shares: the workspace and the campaign."""

    workspace_id: int
    workspace_name: str = ""
    postal_address: str = ""
    campaign_name: str = ""


class _TextMail(html2text.HTML2Text):
    """html2text, with links written the way mail clients show text mail
    (`See the offer: https://…`) instead of Markdown's `[See the offer](<https://…>)`."""

    def __init__(self) -> None:
        super().__init__(bodywidth=0)
        self.ignore_images = True
        self.ignore_links = True  # written here, at the end of each link
        self._links: list[list[str]] = []  # [href, text so far] of each open <a>

    def handle_tag(self, tag: str, attrs: dict[str, str | None], start: bool) -> None:
        if tag == "a" and start:
            self._links.append([(attrs.get("href") or "").strip(), ""])
        super().handle_tag(tag, attrs, start)
        if tag == "a" and not start and self._links:
            href, text = self._links.pop()
            tail = _link_tail(href, text)
            if tail:
                self.o(tail)

    def handle_data(self, data: str, entity_char: bool = False) -> None:
        for link in self._links:
            link[1] += data
        super().handle_data(data, entity_char)


def _link_tail(href: str, text: str) -> str:
    """What follows a link's text: `: URL`, nothing when the text already is the address
    (or the link goes nowhere), the URL alone for a link without text (an image)."""
    if not href or href.startswith("#") or href.lower().startswith("javascript:"):
        return ""
    shown = href[len("mailto:") :] if href.lower().startswith("mailto:") else href
    text = " ".join(text.split())
    if text in (shown, href):
        return ""
    return f": {shown}" if text else shown


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML body, links as `text: URL`."""
    return _TextMail().handle(html).strip() + "\n"


def _uses(source: str, name: str) -> bool:
    return re.search(r"\{\{[^}]*\b" + re.escape(name) + r"\b", source) is not None


def _add_footer(html: str) -> str:
    match = _BODY_END_RE.search(html)
    if match:
        return html[: match.start()] + FOOTER + html[match.start() :]
    return html + FOOTER


def _forbidden(ast: nodes.Template) -> tuple[str, int] | None:
    """The first construct the sandbox would refuse, found before anything runs."""
    for node in ast.find_all((nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
        return "importing, including or extending other templates is not allowed", node.lineno
    for attr in ast.find_all(nodes.Getattr):
        if attr.attr.startswith("_"):
            return f"“{attr.attr}” is not allowed (names starting with “_”)", attr.lineno
    for item in ast.find_all(nodes.Getitem):
        arg = item.arg
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value[:1] == "_":
            return f"“{arg.value}” is not allowed (names starting with “_”)", item.lineno
    for filter_ in ast.find_all(nodes.Filter):
        if filter_.name == "attr":
            return "the attr filter is not allowed", filter_.lineno
    return None


def _parse(env: _Sandbox, source: str, part: str) -> nodes.Template:
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        line = exc.lineno
        if "Unexpected end of template" in (exc.message or ""):
            line = source.rstrip("\n").count("\n") + 1  # Jinja names the last token's line
        raise TemplateProblem(_readable(exc), line, part) from exc
    problem = _forbidden(ast)
    if problem:
        raise TemplateProblem(problem[0], problem[1], part)
    return ast


def _readable(exc: TemplateSyntaxError) -> str:
    message = exc.message or str(exc)
    if "unexpected '}'" in message:
        message += " (a variable is written {{ name }}, with two braces on each side)"
    elif "Unexpected end of template" in message:
        message += " (a {% if %} or {% for %} is missing its {% endif %} or {% endfor %})"
    return message


def _compile(env: _Sandbox, source: str, part: str):
    _parse(env, source, part)
    try:
        return env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(_readable(exc), exc.lineno, part) from exc


def _inliner() -> css_inline.CSSInliner:
    # @media rules stay in a <style> block: mobile layouts need them, clients that read them
    # apply them, the rest ignore them.
    return css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)


def _inline_around_tags(source: str) -> str | None:
    """The template source with its CSS inlined, template tags untouched; None if the
    markup moves or swallows a tag (inlining then happens on each rendered message)."""
    tokens = list(HTML_ENV.lex(source))
    if "".join(t[2] for t in tokens) != source:
        return None
    pieces: list[str] = []
    tags: list[str] = []
    for _line, kind, value in tokens:
        if kind == "data":
            pieces.append(value)
        elif pieces and tags and pieces[-1] == _PLACEHOLDER.format(len(tags) - 1):
            tags[-1] += value
        else:
            tags.append(value)
            pieces.append(_PLACEHOLDER.format(len(tags) - 1))
    try:
        inlined = _inliner().inline("".join(pieces))
    except ValueError:
        return None
    found = [int(n) for n in _PLACEHOLDER_RE.findall(inlined)]
    if found != list(range(len(tags))) or _skeleton(inlined) != _skeleton("".join(pieces)):
        # The parser moved a tag (text in a table is moved before it, a <tbody> is added
        # around rows): inlining the source would change what the template produces.
        return None
    return _PLACEHOLDER_RE.sub(lambda m: tags[int(m.group(1))], inlined)


def _skeleton(markup: str) -> list[str]:
    """Element tags and template-tag placeholders in document order, the parts an HTML
    parser may add on its own left out."""
    return [
        m.group(0) if m.group(2) is None else m.group(1) + m.group(2).lower()
        for m in _TAG_RE.finditer(markup)
        if m.group(2) is None or m.group(2).lower() not in _SKELETON_SKIP
    ]


class CompiledTemplate:
    """Subject, HTML and text compiled once; `render` is the per-recipient hot path."""

    def __init__(self, subject: str, html: str, text: str | None, footer: bool = True) -> None:
        self.subject_source = subject
        self.html_source = html
        text_source = text if text and text.strip() else html_to_text(html)
        self.text_source = text_source
        # Parse the author's own sources first so line numbers are theirs.
        _parse(TEXT_ENV, subject, "subject")
        _parse(HTML_ENV, html, "html")
        _parse(TEXT_ENV, text_source, "text")
        if footer and not _uses(html, "unsubscribe_url"):
            html = _add_footer(html)
        if footer and not _uses(text_source, "unsubscribe_url"):
            text_source += TEXT_FOOTER
        self._inline_each = False
        if re.search(r"<style|<link", html, re.IGNORECASE):
            inlined = _inline_around_tags(html)
            if inlined is None:
                self._inline_each = True
            else:
                html = inlined
        self.compiled_html_source = html
        self.compiled_text_source = text_source
        self._subject = _compile(TEXT_ENV, subject, "subject")
        self._html = _compile(HTML_ENV, html, "html")
        self._text = _compile(TEXT_ENV, text_source, "text")
        # The hot path renders the three parts in one go (one context instead of three,
        # about 10% faster), split at a separator nobody can guess; subject and text are
        # not HTML, so they render without escaping.
        self._sep = f"\x00{secrets.token_hex(8)}\x00"
        self._all = HTML_ENV.from_string(
            "{% autoescape false %}" + _chomp(subject) + "{% endautoescape %}" + self._sep
            + _chomp(html) + self._sep
            + "{% autoescape false %}" + _chomp(text_source) + "{% endautoescape %}"
        )  # fmt: skip

    def render(
        self,
        variables: Mapping[str, Any],
        *,
        click_url: Callable[[str], str] | None = None,
        open_pixel_url: str | None = None,
    ) -> Rendered:
        """One message. `click_url(url)` rewrites each http(s) link except the unsubscribe
        link; `open_pixel_url` adds a 1x1 image at the end of the body."""
        _start_budget()
        try:
            parts = _join_capped(self._all.generate(variables)).split(self._sep)
        except _RENDER_ERRORS:
            parts = self._render_parts(variables)  # raises, naming the part
        if len(parts) != 3:
            parts = self._render_parts(variables)
        subject, html, text = parts
        subject = " ".join(subject.split())
        if self._inline_each:
            html = _inliner().inline(html)
        if click_url is not None:
            html = _rewrite_links(html, click_url, variables.get("unsubscribe_url") or "")
        if open_pixel_url:
            html = _add_pixel(html, open_pixel_url)
        return Rendered(subject=subject, html=html, text=text)

    def _render_parts(self, variables: Mapping[str, Any]) -> list[str]:
        """Each part on its own: the slow path, which can say which part failed."""
        out = []
        for part, template in (
            ("subject", self._subject),
            ("html", self._html),
            ("text", self._text),
        ):
            _start_budget()
            try:
                out.append(_join_capped(template.generate(variables)))
            except _LimitExceeded as exc:
                raise TemplateTooCostly(f"too costly to render ({exc})", part=part) from exc
            except SecurityError as exc:
                reason = str(exc)
                if "safely callable" in reason:
                    reason = "only range() and a few text methods (title, upper, …) may be called"
                raise TemplateProblem(f"not allowed in a template ({reason})", part=part) from exc
            except UndefinedError as exc:
                raise TemplateProblem(str(exc), part=part) from exc
            except _RENDER_ERRORS as exc:
                raise TemplateProblem(f"{type(exc).__name__}: {exc}", part=part) from exc
        return out


_RENDER_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


def _chomp(source: str) -> str:
    """The source as Jinja reads it: one trailing newline dropped."""
    if source.endswith("\r\n"):
        return source[:-2]
    return source[:-1] if source.endswith(("\n", "\r")) else source


def _rewrite_links(html: str, click_url: Callable[[str], str], keep: str) -> str:
    def swap(match: re.Match[str]) -> str:
        url = html_lib.unescape(match.group(3))
        if url == keep:
            return match.group(0)
        quote = match.group(2)
        return f"{match.group(1)}{quote}{html_lib.escape(click_url(url))}{quote}"

    return _HREF_RE.sub(swap, html)


def _add_pixel(html: str, url: str) -> str:
    pixel = (
        f'<img src="{html_lib.escape(url)}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px">'
    )
    end = html.lower().rfind("</body")
    if end >= 0:
        return html[:end] + pixel + html[end:]
    return html + pixel


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
    preferences_url: str = "",
) -> dict[str, Any]:
    """The variables for one recipient. Empty values are left out, so that
    `{{ first_name | default("there") }}` falls back for a blank name too."""
    get = contact.get if isinstance(contact, Mapping) else lambda k: getattr(contact, k, None)
    variables: dict[str, Any] = {
        "workspace_name": workspace_name,
        "postal_address": postal_address,
        "campaign_name": campaign_name,
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
    }
    for name in STANDARD_VARIABLES:
        value = get(name)
        if value not in (None, ""):
            variables[name] = value
    custom = get("custom_fields") or {}
    variables["custom_fields"] = {k: v for k, v in custom.items() if v not in (None, "")}
    return variables


def render_for_contact(
    compiled: CompiledTemplate,
    contact: Any,
    ctx: MailContext,
    *,
    message_id: int | None = None,
    track_opens: bool = False,
    track_clicks: bool = False,
    unsubscribe_url: str | None = None,
    preferences_url: str | None = None,
) -> Rendered:
    """The one render call for a recipient: preview, test send and campaign send.

    `preferences_url` defaults to the one that goes with the unsubscribe link: a test
    link for previews and test sends, the contact's signed link otherwise.

    `contact` is a Contact row or a mapping (sample data); its `id` (0 when absent) and
    `message_id` go into the signed unsubscribe URL unless `unsubscribe_url` is given.
    Tracking needs a `message_id` (the ledger row) and is skipped without one."""
    get = contact.get if isinstance(contact, Mapping) else lambda k: getattr(contact, k, None)
    if unsubscribe_url is None:
        unsubscribe_url = tracking.unsubscribe_url(
            ctx.workspace_id, int(get("id") or 0), message_id
        )
    if preferences_url is None:
        contact_id = int(get("contact_id") or get("id") or 0)
        preferences_url = tracking.preferences_url_like(
            unsubscribe_url, ctx.workspace_id, contact_id
        )
    variables = contact_variables(
        contact,
        workspace_name=ctx.workspace_name,
        postal_address=ctx.postal_address,
        campaign_name=ctx.campaign_name,
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
    )
    click = open_pixel = None
    if message_id is not None and track_clicks:

        def click(url: str) -> str:
            return tracking.click_url(ctx.workspace_id, message_id, url)

    if message_id is not None and track_opens:
        open_pixel = tracking.open_url(ctx.workspace_id, message_id)
    return compiled.render(variables, click_url=click, open_pixel_url=open_pixel)


def referenced_names(source: str) -> set[str]:
    """Variable names a template reads from outside: top-level names (not the ones it sets
    itself, like loop variables) and `custom_fields.key` pairs."""
    try:
        ast = HTML_ENV.parse(source)
    except TemplateSyntaxError:
        return set()
    found = set(meta.find_undeclared_variables(ast))
    for attr in ast.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == "custom_fields":
            found.add(f"custom_fields.{attr.attr}")
    for item in ast.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == "custom_fields"
            and isinstance(item.arg, nodes.Const)
        ):
            found.add(f"custom_fields.{item.arg.value}")
    return found


def unknown_variables(sources: Iterable[str], known: Iterable[str]) -> list[str]:
    """Names the sources read that no field or system variable defines, sorted."""
    allowed = set(known) | set(SYSTEM_VARIABLES) | BUILTIN_NAMES
    names: set[str] = set()
    for source in sources:
        if source:
            names |= referenced_names(source)
    return sorted(n for n in names if n not in allowed)


def check_template(
    subject: str, html: str, text: str | None, known: Iterable[str]
) -> tuple[CompiledTemplate, list[str]]:
    """Compile (TemplateProblem on an error) and list warnings a marketer should read."""
    compiled = compile_template(subject, html, text or None)
    warnings = [
        f"“{name}” is not a field of this workspace: it will render empty "
        "unless you give it a default."
        for name in unknown_variables([subject, html, text or ""], known)
    ]
    return compiled, warnings


def sample_contact(custom_keys: Iterable[str] = ()) -> dict[str, Any]:
    """Made-up recipient data for previews without a real contact."""
    return {
        "id": 0,
        "email": "alex.sample@example.com",
        "first_name": "Alex",
        "last_name": "Sample",
        "company": "Example Ltd",
        "city": "Lisbon",
        "country": "Portugal",
        "phone": "+351 210 000 000",
        "custom_fields": {key: f"sample {key}" for key in custom_keys},
    }
