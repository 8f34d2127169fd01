"""A small web application: users on PostgreSQL, a welcome job on Celery, user events broadcast
over Redis pub/sub, and a WebSocket counter. Serve it with
``execscope run -- uvicorn app:app`` from this folder (see README.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import db
import psycopg
import redis.asyncio as aioredis
from config import CHANNEL, REDIS_URL, conninfo
from fastapi import FastAPI, HTTPException, WebSocket
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from starlette.endpoints import WebSocketEndpoint
from tasks import send_welcome


class NewUser(BaseModel):
    name: str
    email: str
    password: str


class User(BaseModel):
    id: int
    name: str
    email: str


class Services:
    """What the handlers share: the connection pool and the Redis client."""

    def __init__(self) -> None:
        self.pool = AsyncConnectionPool(
            conninfo(),
            min_size=2,
            max_size=8,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},
        )
        self.redis = aioredis.Redis.from_url(REDIS_URL)

    async def open(self) -> None:
        db.create_schema()
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()
        await self.redis.aclose()


services = Services()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await services.open()
    yield
    await services.close()


app = FastAPI(title="execscope example", lifespan=lifespan)


async def publish_event(event: str, user: User) -> None:
    await services.redis.publish(CHANNEL, json.dumps({"event": event, "id": user.id, "name": user.name}))


@app.post("/users", status_code=201)
async def create_user(new_user: NewUser) -> User:
    async with services.pool.connection() as connection:
        try:
            row = await (
                await connection.execute(
                    "INSERT INTO users (name, email, password_hash) VALUES (%s, %s, %s) "
                    "RETURNING id, name, email",
                    (new_user.name, new_user.email, db.hash_password(new_user.password)),
                )
            ).fetchone()
        except psycopg.errors.UniqueViolation as taken:
            raise HTTPException(409, f"{new_user.email} is already registered") from taken
    user = User(**row)
    send_welcome.delay(user.id, user.email)
    await publish_event("created", user)
    return user


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> User:
    async with services.pool.connection() as connection:
        row = await (
            await connection.execute("SELECT id, name, email FROM users WHERE id = %s", (user_id,))
        ).fetchone()
    if row is None:
        raise HTTPException(404, f"no user {user_id}")
    return User(**row)


@app.get("/users")
async def list_users(limit: int = 20) -> list[User]:
    async with services.pool.connection() as connection:
        rows = await (
            await connection.execute("SELECT id, name, email FROM users ORDER BY id LIMIT %s", (limit,))
        ).fetchall()
    return [User(**row) for row in rows]


@app.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: int) -> None:
    async with services.pool.connection() as connection:
        deleted = await (
            await connection.execute("DELETE FROM users WHERE id = %s RETURNING id", (user_id,))
        ).fetchone()
    if deleted is None:
        raise HTTPException(404, f"no user {user_id}")


@app.get("/boom")
async def boom() -> dict[str, Any]:
    """Fails on purpose: an unhandled error, to see how it is recorded."""
    return {"ratio": 1 / 0}


class Counter(WebSocketEndpoint):
    """A counter per connection: send `inc`, `dec` or `reset`; it answers with the count."""

    encoding = "text"

    async def on_connect(self, websocket: WebSocket) -> None:  # type: ignore[override]
        self.count = 0
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: str) -> None:  # type: ignore[override]
        if data == "inc":
            self.count += 1
        elif data == "dec":
            self.count -= 1
        elif data == "reset":
            self.count = 0
        await websocket.send_text(json.dumps({"count": self.count}))


app.router.add_websocket_route("/ws/counter", Counter)
