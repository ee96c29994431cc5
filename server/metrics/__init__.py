"""Prometheus metrics: `Metrics` (one registry per app), its GraphQL extension
(`server.metrics.graphql`), its ASGI middleware (`server.metrics.asgi`) and the guarded
`/metrics` endpoint (`server.metrics.endpoint`). Only the registry is imported here, so
any module may import this package without pulling in the API."""

from server.metrics.registry import Metrics, UpstreamStream

__all__ = ["Metrics", "UpstreamStream"]
