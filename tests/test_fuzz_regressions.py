"""The fuzzer's findings, kept as regression tests in every run.

The property-based tests themselves live in ``fuzz_endpoints.py`` (not collected by default:
``make fuzz`` runs them); importing these named tests and the module's server fixture here makes
pytest collect them in CI too.
"""

from __future__ import annotations

from .fuzz_endpoints import (  # noqa: F401  (pytest collects what is imported)
    server,
    test_batch_schema_error_shows_no_python_internals,
    test_batch_schema_too_deep_for_the_fast_path_is_still_applied,
    test_batch_schema_with_a_ref_that_is_not_a_string_is_a_400_not_a_500,
    test_batch_schema_with_an_invalid_pattern_property_regex_is_a_400_not_a_500,
    test_content_type_with_a_non_ascii_byte_gets_a_415_not_a_500,
    test_malformed_body_detail_shows_no_python_internals,
)
