from __future__ import annotations

from starlette.requests import Request

from server.api.identity import client_ip

PROXY = "10.0.0.5"


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 50000), "headers": headers})


def test_the_peer_is_the_client_unless_it_is_a_trusted_proxy() -> None:
    assert client_ip(_request("203.0.113.9", "198.51.100.1")) == "203.0.113.9"  # forwarded header ignored
    assert client_ip(_request(PROXY, "198.51.100.1"), [PROXY]) == "198.51.100.1"


def test_forged_entries_before_the_nearest_untrusted_hop_are_ignored() -> None:
    forged = "1.2.3.4, 198.51.100.1"  # the client wrote the first entry; our proxy appended the second
    assert client_ip(_request(PROXY, forged), [PROXY]) == "198.51.100.1"
    assert client_ip(_request(PROXY, f"198.51.100.1, {PROXY}"), [PROXY]) == "198.51.100.1"


def test_a_trusted_proxy_without_a_header_is_itself_the_client() -> None:
    assert client_ip(_request(PROXY), [PROXY]) == PROXY
    assert client_ip(None) is None
