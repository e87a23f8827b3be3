"""The local stack: embedded Redis and Postgres, local invoker and scheduler."""
