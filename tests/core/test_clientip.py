"""The client's address behind trusted proxies (TRUSTED_PROXIES, core.infra.clientip)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.infra.clientip import client_ip
from core.infra.config import Settings

PROXIES = "10.0.0.0/8, 192.0.2.7, 2001:db8::/32"


def test_without_trusted_proxies_the_peer_is_the_client():
    assert client_ip("203.0.113.5", ["198.51.100.1"], "") == "203.0.113.5"
    assert client_ip("10.1.2.3", ["198.51.100.1"], "") == "10.1.2.3"


def test_a_header_from_an_untrusted_peer_is_ignored():
    assert client_ip("203.0.113.5", ["198.51.100.1"], PROXIES) == "203.0.113.5"


def test_the_right_most_untrusted_address_is_the_client():
    # The client wrote "1.1.1.1" itself; the load balancer appended what it saw.
    assert client_ip("10.0.0.2", ["1.1.1.1, 198.51.100.9"], PROXIES) == "198.51.100.9"
    # Two proxies of ours in a row, then the client; several headers count as one list.
    assert client_ip("192.0.2.7", ["1.1.1.1, 198.51.100.9", "10.9.9.9"], PROXIES) == (
        "198.51.100.9"
    )
    assert client_ip("10.0.0.2", ["[2001:db9::1]:443 , 10.0.0.3"], PROXIES) == "2001:db9::1"
    assert client_ip("10.0.0.2", ["198.51.100.9:51234"], PROXIES) == "198.51.100.9"


def test_only_proxies_or_an_unreadable_entry():
    assert client_ip("10.0.0.2", ["10.0.0.4, 10.0.0.3"], PROXIES) == "10.0.0.4"
    assert client_ip("10.0.0.2", ["198.51.100.9, not-an-ip"], PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", [], PROXIES) == "10.0.0.2"
    assert client_ip("", ["198.51.100.9"], PROXIES) == ""


def test_a_setting_that_is_not_an_address_is_refused_at_start():
    assert Settings(trusted_proxies=PROXIES).trusted_proxies == PROXIES
    with pytest.raises(ValidationError, match="not an IP address or CIDR"):
        Settings(trusted_proxies="10.0.0.0/8, proxy.internal")
