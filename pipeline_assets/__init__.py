"""Assets by domain: sources, per-source chain, merge, circuit breaker, export."""
