"""The test harness itself: each run has its own Redis db and Postgres schema."""

import redis

from chalicelib.db import connect


def test_redis_is_real_and_noeviction(redis_client: redis.Redis) -> None:
    assert redis_client.ping()
    assert redis_client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"


def test_postgres_schema_is_this_runs_own(database_url: str, db_schema: str) -> None:
    conn = connect(database_url, db_schema)
    try:
        assert conn.run("SELECT current_schema()")[0][0] == db_schema
    finally:
        conn.close()
