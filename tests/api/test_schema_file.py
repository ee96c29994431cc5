from __future__ import annotations

from scripts.export_schema import SCHEMA_FILE, exported_schema


def test_schema_graphql_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == exported_schema(), (
        "schema.graphql is stale: run `python scripts/export_schema.py` and commit it"
    )


def test_schema_types_are_sorted() -> None:
    names = [line.split()[1] for line in exported_schema().splitlines() if line.startswith(("type ", "scalar "))]
    assert names == sorted(names)
