"""Live data for subscriptions: per-user upstream feeds, refcounted symbols, conflated fan-out."""
