"""postgres.py's pure parts: URLs shown without their password, and which URLs select PostgreSQL."""

from __future__ import annotations

import pytest

from llm_scope.postgres import Database, DatabaseError, is_postgres_url, safe_url
from tests.fakes.serving import free_port


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw-secret@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("postgres://:pw-secret@db/x?sslmode=require", "postgres://***@db/x?sslmode=require"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_only_postgres_urls_select_postgres() -> None:
    assert is_postgres_url("postgresql://db/x") and is_postgres_url("postgres://db/x")
    assert not is_postgres_url("sqlite:///x.db") and not is_postgres_url(None) and not is_postgres_url("")


def test_an_unreachable_database_is_an_error_that_hides_the_password() -> None:
    db = Database(f"postgresql://u:pw-secret-1357@127.0.0.1:{free_port()}/x", component="t", migrations=[])
    with pytest.raises(DatabaseError) as failure:
        db.query("SELECT 1")
    assert failure.value.unavailable and "pw-secret-1357" not in str(failure.value)
