"""The AI writing assistant: drafts, rewrites and subject lines from any OpenAI-compatible
chat-completions server (OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL, OPENAI_TIMEOUT).

Output streams as text chunks. Personalisation variables (`{{ first_name }}`,
`{% if %}` blocks) must survive a rewrite: the prompt says so, and `dropped_variables`
checks it so the page can warn. Nothing here touches a template: the caller decides what
to keep, so a failure never loses the draft.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from core.content.rendering import referenced_names
from core.infra.config import settings
from core.infra.errors import MailwrightError
from core.infra.permissions import Actor

TONES = ("friendly", "professional", "enthusiastic", "concise", "formal", "playful")
ACTIONS = ("draft", "improve", "shorten", "tone", "subjects")
HOW_TO_ENABLE = (
    "The writing assistant is off. To enable it, set OPENAI_API_KEY (and, for another "
    "OpenAI-compatible server, OPENAI_BASE_URL and OPENAI_MODEL) in the environment or "
    ".env, then restart the app. Everything else works without it."
)
_SYSTEM = (
    "You write marketing emails for a small team. Answer with the requested content only: "
    "no preamble, no explanations, no Markdown code fences. "
    "The text may contain Jinja personalisation tags such as {{ first_name }}, "
    '{{ first_name | default("there") }}, {{ custom_fields.plan }}, {{ unsubscribe_url }} '
    "or {% if %}...{% endif %}: copy every such tag exactly, character for character, and "
    "keep it where it makes sense; never invent new tags."
)
_TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


class AssistantUnavailable(MailwrightError):
    """No API key is configured."""


class AssistantFailed(MailwrightError):
    """The AI server timed out, refused (rate limit) or answered with an error."""


@dataclass(frozen=True)
class Request:
    action: str  # one of ACTIONS
    text: str  # the brief (draft) or the text to work on
    tone: str = "friendly"


def is_configured() -> bool:
    return bool(settings.openai_api_key)


def _messages(request: Request) -> list[dict[str, str]]:
    text = request.text.strip()
    if request.action == "draft":
        user = (
            "Write the body of a marketing email from this brief, as simple HTML for an email "
            "editor (<h2>, <p>, <ul>, <li>, <strong>, <em>, <a href>; no <html>, <head>, "
            "<style> or images). Greet the reader with "
            '{{ first_name | default("there") }}.\n\nBrief:\n' + text
        )
    elif request.action == "improve":
        user = (
            "Improve this email text: clearer, livelier, correct grammar, same meaning, "
            "same format (HTML stays HTML).\n\n" + text
        )
    elif request.action == "shorten":
        user = (
            "Shorten this email text to about half its length, keeping the key message and "
            "the call to action, same format (HTML stays HTML).\n\n" + text
        )
    elif request.action == "tone":
        user = (
            f"Rewrite this email text in a {request.tone} tone, same meaning, same format "
            "(HTML stays HTML).\n\n" + text
        )
    elif request.action == "subjects":
        user = (
            "Suggest five subject lines for this email, one per line, no numbering, no "
            "quotes, each under 70 characters.\n\n" + text
        )
    else:
        raise AssistantFailed(f"Unknown assistant action {request.action!r}.")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def _client():
    from openai import OpenAI

    return OpenAI(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url or None,
        timeout=settings.openai_timeout,
        max_retries=0,
    )


def _failure(exc: Exception) -> AssistantFailed:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return AssistantFailed(
            f"The AI server did not answer within {settings.openai_timeout:g} s. "
            "Your text is unchanged; try again."
        )
    if isinstance(exc, openai.RateLimitError):
        return AssistantFailed(
            "The AI server is rate limiting us (too many requests or quota used up). "
            "Your text is unchanged; try again in a minute."
        )
    if isinstance(exc, openai.AuthenticationError):
        return AssistantFailed("The AI server refused the API key (OPENAI_API_KEY).")
    if isinstance(exc, openai.APIStatusError):
        return AssistantFailed(
            f"The AI server answered with an error ({exc.status_code}): {_short(exc)}. "
            "Your text is unchanged."
        )
    if isinstance(exc, openai.APIConnectionError):
        return AssistantFailed(
            "Could not reach the AI server (OPENAI_BASE_URL). Your text is unchanged."
        )
    return AssistantFailed(f"The AI assistant failed: {exc}. Your text is unchanged.")


def _short(exc: Exception) -> str:
    message = getattr(exc, "message", "") or str(exc)
    return message[:200]


def stream(actor: Actor, request: Request) -> Iterator[str]:
    """Yield the answer in pieces as the server sends them.

    Raises AssistantUnavailable without a key and AssistantFailed on a timeout, a rate
    limit or an error status (also mid-stream)."""
    import openai

    actor.require("edit")
    if not is_configured():
        raise AssistantUnavailable(HOW_TO_ENABLE)
    if not request.text.strip():
        raise AssistantFailed(
            "Write a brief first." if request.action == "draft" else "Give it some text first."
        )
    try:
        response = _client().chat.completions.create(
            model=settings.openai_model,
            messages=_messages(request),
            stream=True,
            temperature=0.7,
        )
        for chunk in response:
            if not chunk.choices:
                continue
            piece = chunk.choices[0].delta.content
            if piece:
                yield piece
    except openai.OpenAIError as exc:
        raise _failure(exc) from exc


def clean_output(text: str) -> str:
    """The answer without Markdown code fences some models add anyway."""
    text = text.strip()
    fence = re.match(r"^```[a-zA-Z]*\n(.*?)\n?```$", text, re.DOTALL)
    return fence.group(1).strip() if fence else text


def complete(actor: Actor, request: Request) -> str:
    """The whole answer at once (CLI, tests)."""
    return clean_output("".join(stream(actor, request)))


def parse_subjects(answer: str) -> list[str]:
    """Up to five subject lines from the answer, numbering and quotes removed."""
    subjects = []
    for line in clean_output(answer).splitlines():
        line = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip().strip("\"'“”").strip()
        if line:
            subjects.append(line)
    return subjects[:5]


def dropped_variables(before: str, after: str) -> list[str]:
    """Personalisation the rewrite lost: variables read by `before` but not by `after`,
    and tags (e.g. `{% if %}`) that are gone, so the page can warn."""
    lost = referenced_names(before) - referenced_names(after) - {"custom_fields"}
    after_tags = {" ".join(t.split()) for t in _TAG_RE.findall(after)}
    for tag in _TAG_RE.findall(before):
        normal = " ".join(tag.split())
        if normal.startswith("{%") and normal not in after_tags:
            lost.add(normal)
    return sorted(lost)
