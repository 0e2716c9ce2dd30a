from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.infra.config import settings
from tests.templates.openai_server import FakeOpenAI


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A local chat-completions server, with the settings pointing at it."""
    with FakeOpenAI() as server:
        monkeypatch.setattr(settings, "openai_api_key", "sk-test-key")
        monkeypatch.setattr(settings, "openai_base_url", server.base_url)
        monkeypatch.setattr(settings, "openai_model", "test-model")
        monkeypatch.setattr(settings, "openai_timeout", 2.0)
        yield server
