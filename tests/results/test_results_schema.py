"""The result schemas: one versioned module, every column documented, validation naming columns."""

from __future__ import annotations

import pyarrow as pa
import pytest
from results_factory import checkpoint_row

import dmsec.results.schema as schema_module
from dmsec.results.schema import SCHEMA_VERSION, SCHEMAS, TABLES, SchemaError, check_table, to_table


def test_each_table_has_a_versioned_schema():
    assert set(SCHEMAS) == set(TABLES) == {"checkpoints", "candidates", "matches", "security"}
    for name, schema in SCHEMAS.items():
        assert schema.metadata[b"dmsec.schema"] == f"{name}/{SCHEMA_VERSION}".encode()


def test_every_column_is_documented_in_the_module_docstring():
    doc = schema_module.__doc__ or ""
    for schema in SCHEMAS.values():
        for name in schema.names:
            assert name in doc, f"column {name} is not documented"


def test_rows_fit_and_bad_rows_name_the_column():
    row = checkpoint_row("s1", "a")
    table = to_table("checkpoints", [row])
    assert table.schema.equals(SCHEMAS["checkpoints"], check_metadata=True)
    with pytest.raises(SchemaError, match="`status` must not be null"):
        to_table("checkpoints", [{**row, "status": None}])
    with pytest.raises(SchemaError, match="unknown columns \\['colour'\\]"):
        to_table("checkpoints", [{**row, "colour": 1}])
    with pytest.raises(SchemaError, match="`table` must be one of"):
        to_table("findings", [])


def test_check_table_names_a_wrong_type():
    table = to_table("checkpoints", [checkpoint_row("s1", "a")])
    bad = table.set_column(table.schema.get_field_index("n_samples"), "n_samples", pa.array(["64"]))
    with pytest.raises(SchemaError, match="`n_samples` is string, expected int32"):
        check_table("checkpoints", bad)
    with pytest.raises(SchemaError, match="`error` is missing"):
        check_table("checkpoints", table.drop_columns(["error"]))
