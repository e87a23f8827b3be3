"""The Chalice app: routes, the consumer and the scheduled sweeper. Thin wiring only."""

from __future__ import annotations

from chalice import Chalice

app = Chalice(app_name="soundcheck")


@app.route("/health", methods=["GET"])
def health() -> dict[str, str]:
    """Liveness: the function runs. Readiness (Redis, Postgres) is /health/ready."""
    return {"status": "ok"}
