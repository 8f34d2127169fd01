"""The users table: creation and the queries the application and the worker run."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import psycopg
from config import SCHEMA, conninfo
from psycopg.rows import dict_row

SCHEMA_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.users (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    welcomed_at TIMESTAMPTZ
);
"""


def create_schema() -> None:
    with psycopg.connect(conninfo(), autocommit=True) as connection:
        connection.execute(SCHEMA_SQL)


def hash_password(password: str) -> str:
    salt = os.urandom(8)
    return salt.hex() + ":" + hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000).hex()


def mark_welcomed(user_id: int) -> dict[str, Any] | None:
    """Called by the worker once the welcome message went out."""
    with psycopg.connect(conninfo(), autocommit=True, row_factory=dict_row) as connection:
        row = connection.execute(
            "UPDATE users SET welcomed_at = now() WHERE id = %s RETURNING id, name, email", (user_id,)
        ).fetchone()
        return dict(row) if row is not None else None
