"""Opening the configured store, migrated to the current schema."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, session_factory
from store.migrate import upgrade


def open_store(url: str) -> sessionmaker[Session]:
    engine = make_engine(url)
    upgrade(engine)  # idempotent: a no-op when the schema is current
    return session_factory(engine)
