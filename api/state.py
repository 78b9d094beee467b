"""The clients a running API holds, opened in the app's lifespan and closed with it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from minio import Minio
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from aion.redis_clients import RedisLimits, async_client
from aion.settings import Settings
from aion.stack.s3 import s3_client
from api.authorization import TenantPolicies
from api.idempotency import Liveness
from api.live_streams import LiveStreams
from api.pending import PendingCommands
from api.producer import AsyncProducer
from api.rate_limits import RateLimiter
from api.read_waits import ReadWaits
from api.tokens import TokenVerifier
from projections.vector_service import SearchIndex
from schemas.codec import Codec


@dataclass
class ApiState:
    settings: Settings
    producer: AsyncProducer
    codec: Codec
    db: AsyncConnectionPool[Any]
    redis: Redis  # timeouts and a capped pool (aion/redis_clients.py)
    streams: LiveStreams  # SSE streams: a Redis pool of their own, a cap per caller
    s3: Minio
    search: SearchIndex
    tokens: TokenVerifier
    limiter: RateLimiter
    tenant_policies: TenantPolicies
    pending: PendingCommands
    liveness: Liveness
    waits: ReadWaits  # reads waiting for the read model (?after_command=), off the pool
    known_tenants: set[str] = field(default_factory=set)  # tenants seen in the read model

    @classmethod
    async def open(cls, settings: Settings) -> ApiState:
        db: AsyncConnectionPool[Any] = AsyncConnectionPool(
            settings.database, min_size=1, max_size=10, open=False
        )
        await db.open(wait=True, timeout=30)
        search = SearchIndex(settings)
        await asyncio.to_thread(search.start)  # loads the embedder; embedded: the projection
        redis = async_client(settings.redis, RedisLimits.of(settings))
        liveness = Liveness(redis)
        await liveness.start()
        pending = PendingCommands(redis)
        return cls(
            settings=settings,
            producer=AsyncProducer(settings.kafka),
            codec=Codec(settings.registry),
            db=db,
            redis=redis,
            streams=LiveStreams.open(settings),
            s3=s3_client(
                settings.s3, settings.s3_access_key, settings.s3_secret_key, settings.s3_secure
            ),
            search=search,
            tokens=TokenVerifier(settings),
            limiter=RateLimiter(redis),
            tenant_policies=TenantPolicies(),
            pending=pending,
            liveness=liveness,
            waits=ReadWaits(db, pending),
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.search.stop)
        self.producer.close()
        await self.waits.close()
        await self.db.close()
        await self.pending.close()
        await self.liveness.stop()
        await self.tokens.close()
        await self.streams.close()
        await self.redis.aclose()
