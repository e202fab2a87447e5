"""The shared fixtures reach the real servers of this machine."""

import asyncpg
import redis


async def test_postgres_fixture_gives_an_empty_database(postgres_url: str) -> None:
    """Each test gets its own database, reachable over a real connection."""
    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        tables = await connection.fetchval(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        )
    finally:
        await connection.close()
    assert tables == 0


def test_redis_fixture_gives_an_empty_database(redis_url: str) -> None:
    """The Redis database handed to a test starts empty."""
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("probe", "1")
        assert client.get("probe") == b"1"
    finally:
        client.close()
