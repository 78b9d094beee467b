"""The clients a running API holds, opened in the app's lifespan and closed with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from aion.settings import Settings
from api.producer import AsyncProducer
from schemas.codec import Codec


@dataclass
class ApiState:
    settings: Settings
    producer: AsyncProducer
    codec: Codec
    db: AsyncConnectionPool[Any]
    redis: Redis

    @classmethod
    async def open(cls, settings: Settings) -> ApiState:
        db: AsyncConnectionPool[Any] = AsyncConnectionPool(
            settings.database, min_size=1, max_size=10, open=False
        )
        await db.open(wait=True, timeout=30)
        return cls(
            settings=settings,
            producer=AsyncProducer(settings.kafka),
            codec=Codec(settings.registry),
            db=db,
            redis=Redis.from_url(settings.redis),
        )

    async def close(self) -> None:
        self.producer.close()
        await self.db.close()
        await self.redis.aclose()
