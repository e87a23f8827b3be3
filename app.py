"""The Chalice app: routes, the consumer and the scheduled sweeper. Thin wiring only."""

from __future__ import annotations

from typing import Any

from chalice import Chalice, Rate

app = Chalice(app_name="soundcheck")


@app.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    """Liveness: the function runs. Readiness (Redis, Postgres) is /health/ready."""
    return {"status": "ok"}


@app.lambda_function(name="consumer")
def consumer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Drains the queue; woken by the API after a submit (async invoke)."""
    return {"processed": 0}


@app.schedule(Rate(1, unit=Rate.MINUTES), name="sweeper")
def sweeper(event: Any) -> dict[str, Any]:
    """Every minute: promote delayed jobs, reclaim expired leases, reconcile, then drain."""
    return {"processed": 0}
