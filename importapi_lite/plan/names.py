"""The loading model's names: its system columns (SPEC §13.2) and the link columns of subtables."""

from __future__ import annotations

SEQUENCE = "_sdc_sequence"
TABLE_VERSION = "_sdc_table_version"
RECEIVED_AT = "_sdc_received_at"
BATCHED_AT = "_sdc_batched_at"
EXTRACTED_AT = "_sdc_extracted_at"
PRIMARY_KEY = "__sdc_primary_key"  # key-less tables only (SPEC §9 C15: two underscores)


def source_key_column(key: str) -> str:
    return f"_sdc_source_key_{key}"


def level_column(depth: int) -> str:
    return f"_sdc_level_{depth}_id"
