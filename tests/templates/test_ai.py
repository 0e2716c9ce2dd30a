"""core/content/ai.py against a real local chat-completions server (no network, no patched client)."""

from __future__ import annotations

import re
import time

import pytest

from core.content import ai
from core.infra.config import settings
from core.infra.errors import PermissionDenied
from core.infra.permissions import Actor

EDITOR = Actor(workspace_id=1, role="editor", user_id=1, email="ed@example.com")


def test_without_a_key_it_says_how_to_enable_it(monkeypatch):
    monkeypatch.setattr(settings, "openai_api_key", "")
    assert not ai.is_configured()
    with pytest.raises(ai.AssistantUnavailable, match="OPENAI_API_KEY"):
        list(ai.stream(EDITOR, ai.Request("draft", "Spring sale")))


def test_draft_streams_in_pieces_with_the_configured_model(fake_openai):
    fake_openai.behaviour.answer = '```html\n<p>Hi {{ first_name | default("there") }},</p>\n```'
    pieces = list(ai.stream(EDITOR, ai.Request("draft", "Spring sale, 20% off")))
    assert len(pieces) > 3  # it really streamed
    assert ai.clean_output("".join(pieces)) == '<p>Hi {{ first_name | default("there") }},</p>'
    [request] = fake_openai.behaviour.requests
    assert request["auth"] == "Bearer sk-test-key"
    assert request["body"]["model"] == "test-model" and request["body"]["stream"] is True
    system, user = request["body"]["messages"]
    assert "copy every such tag exactly" in system["content"]
    assert "Spring sale, 20% off" in user["content"]


def test_rewrite_flows_and_dropped_variables(fake_openai):
    original = (
        "<p>Hi {{ first_name }}, {% if custom_fields.plan %}your {{ custom_fields.plan }} "
        "plan{% endif %} renews soon.</p>"
    )
    fake_openai.behaviour.answer = "<p>Hi {{ first_name }}, your plan renews soon!</p>"
    answer = ai.complete(EDITOR, ai.Request("shorten", original))
    assert ai.dropped_variables(original, answer) == [
        "custom_fields.plan",
        "{% endif %}",
        "{% if custom_fields.plan %}",
    ]
    fake_openai.behaviour.answer = original.replace("renews", "is renewing")
    answer = ai.complete(EDITOR, ai.Request("tone", original, tone="formal"))
    assert ai.dropped_variables(original, answer) == []
    assert "formal tone" in fake_openai.behaviour.requests[-1]["body"]["messages"][1]["content"]
    fake_openai.behaviour.answer = (
        "1. Your plan renews soon\n2) “Don't miss out”\n- Last chance, {{ first_name }}\n"
        "Fresh picks\nA gift for you\nOne too many"
    )
    subjects = ai.parse_subjects(ai.complete(EDITOR, ai.Request("subjects", original)))
    assert subjects == [
        "Your plan renews soon",
        "Don't miss out",
        "Last chance, {{ first_name }}",
        "Fresh picks",
        "A gift for you",
    ]


@pytest.mark.parametrize(
    ("status", "words"), [(500, "answered with an error (500)"), (429, "rate limiting")]
)
def test_error_statuses_give_a_clear_message(fake_openai, status, words):
    fake_openai.behaviour.status = status
    with pytest.raises(ai.AssistantFailed, match=re.escape(words)) as err:
        list(ai.stream(EDITOR, ai.Request("improve", "Some text")))
    assert "unchanged" in str(err.value)
    assert len(fake_openai.behaviour.requests) == 1  # no silent retries


def test_a_timeout_is_reported(fake_openai, monkeypatch):
    monkeypatch.setattr(settings, "openai_timeout", 0.5)
    # The server would answer after 30 s: the assistant gives up long before (the margin
    # is wide so a busy machine cannot fail this; the message says which limit struck).
    fake_openai.behaviour.delay = 30.0
    started = time.monotonic()
    with pytest.raises(ai.AssistantFailed, match="did not answer within 0.5 s"):
        list(ai.stream(EDITOR, ai.Request("improve", "Some text")))
    assert time.monotonic() - started < 15


def test_an_error_in_the_middle_of_the_stream_keeps_what_arrived(fake_openai):
    fake_openai.behaviour.answer = "one two three four five"
    fake_openai.behaviour.fail_after_chunks = 2
    received = []
    with pytest.raises(ai.AssistantFailed):
        for piece in ai.stream(EDITOR, ai.Request("improve", "Some text")):
            received.append(piece)
    assert "".join(received) == "one two "


def test_unreachable_server_and_viewers(fake_openai, monkeypatch):
    monkeypatch.setattr(settings, "openai_base_url", "http://127.0.0.1:9/v1")
    with pytest.raises(ai.AssistantFailed, match="Could not reach"):
        list(ai.stream(EDITOR, ai.Request("improve", "Some text")))
    viewer = Actor(workspace_id=1, role="viewer")
    with pytest.raises(PermissionDenied):
        list(ai.stream(viewer, ai.Request("improve", "Some text")))
