"""`/metrics` in Prometheus' text format, for the operator's scraper only.

Who may read it:
- with METRICS_TOKEN set: whoever sends `Authorization: Bearer <token>` (compared in
  constant time); a missing or wrong token gets a bare 401;
- the client's address must also be in METRICS_ALLOWED_CLIENTS when that is set, and
  without a token an empty list means loopback only; anyone else gets a bare 403.

The client's address is `client_ip`'s: the peer's, or behind a TRUSTED_PROXIES proxy the
nearest forwarded hop that is not a proxy. A request that carries forwarding headers from
a peer that is not a trusted proxy cannot be placed (a reverse proxy on this host, not
listed, would make every visitor look like loopback): judged by address, it is refused.
"""

from __future__ import annotations

import asyncio
import hmac
from ipaddress import IPv6Address, ip_address, ip_network

from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

from server.api.identity import client_ip
from server.services import Services
from server.settings import Settings

LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def _token_matches(authorization: str | None, token: str) -> bool:
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def _address_allowed(request: Request, settings: Settings) -> bool:
    if settings.metrics_allowed_clients:
        networks = tuple(ip_network(network) for network in settings.metrics_allowed_clients)
    elif settings.metrics_token is not None:
        return True  # the token alone guards it
    else:
        networks = LOOPBACK
    peer = request.client.host if request.client else None
    forwarded = any(name in request.headers for name in FORWARDING_HEADERS)
    if peer is None or (forwarded and peer not in settings.trusted_proxies):
        return False
    address = client_ip(request, settings.trusted_proxies)
    if peer in settings.trusted_proxies and address in settings.trusted_proxies:
        # A proxy that named no caller beyond itself (no X-Forwarded-For, or only proxies in
        # it; X-Real-IP is not read): the proxy's own address says nothing of who is asking.
        return False
    try:
        caller = ip_address(address or "")
    except ValueError:
        return False
    if isinstance(caller, IPv6Address) and caller.ipv4_mapped is not None:
        caller = caller.ipv4_mapped
    return any(caller in network for network in networks)


def refusal(request: Request, settings: Settings) -> Response | None:
    """None when the caller may read the metrics, else the bare answer to give."""
    if not _address_allowed(request, settings):
        return Response(status_code=403)
    token = settings.metrics_token
    if token is not None and not _token_matches(request.headers.get("authorization"), token.get_secret_value()):
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return None


async def metrics_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    refused = refusal(request, services.settings)
    if refused is not None:
        return refused
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    # Off the loop: the process collector reads /proc, and a large registry takes a while to print.
    body = await asyncio.to_thread(encode, services.metrics.registry)
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
