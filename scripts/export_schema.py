"""Write schema.graphql from the code: `python scripts/export_schema.py` (a test fails on drift)."""

from __future__ import annotations

from pathlib import Path

from strawberry.printer import print_schema

from server.api.schema import schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def exported_schema() -> str:
    return print_schema(schema) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(exported_schema(), encoding="utf-8")
