"""The contract tests share the real ``redis-server`` of the Redis tests."""

from tests.scale.conftest import namespace, redis_server

__all__ = ["namespace", "redis_server"]
