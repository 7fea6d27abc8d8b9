"""The migration runner's file rules (applying them is tested on the real database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hopcast_shared.migrations import MigrationError, kernel_migrations, load_migrations


def test_files_load_in_version_order(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("SELECT 2;")
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    loaded = load_migrations("svc", tmp_path)
    assert [(m.version, m.name) for m in loaded] == [(1, "first"), (2, "second")]
    assert loaded[0].checksum != loaded[1].checksum


def test_a_gap_in_versions_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "0003_third.sql").write_text("SELECT 3;")
    with pytest.raises(MigrationError, match="expected migration 0002"):
        load_migrations("svc", tmp_path)


def test_a_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations("svc", tmp_path)


def test_the_kernel_ships_its_outbox_and_inbox() -> None:
    sql = "\n".join(m.sql for m in kernel_migrations())
    assert "CREATE TABLE outbox" in sql and "CREATE TABLE inbox" in sql
    assert "CREATE EXTENSION IF NOT EXISTS vector" in sql
