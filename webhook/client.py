"""Who sent a request: its client's address behind trusted proxies (core.infra.clientip)."""

from __future__ import annotations

from starlette.requests import Request

from core.infra.clientip import client_ip


def client_of(request: Request) -> str:
    """The client's IP address ("" when the server does not know its peer)."""
    peer = request.client.host if request.client else ""
    return client_ip(peer, request.headers.getlist("x-forwarded-for"))
