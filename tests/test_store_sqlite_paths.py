"""``store/sqlite/paths.py``: the only place a client-supplied name reaches the filesystem."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from importapi_lite.store.sqlite.paths import (
    DB_SUFFIX,
    MAX_FILE_NAME_BYTES,
    NameTooLong,
    decode_name,
    encode_name,
    integration_dir,
    table_name_of,
    table_path,
)

# Safe characters stand for themselves; everything else is %XX with upper-case hex digits.
ENCODED = re.compile(r"(?:[a-z0-9_-]|%[0-9A-F]{2})+")
LONGEST = MAX_FILE_NAME_BYTES - len(DB_SUFFIX) - len("-wal")  # 228 encoded characters

HOSTILE = [
    "../x",
    "..",
    ".",
    "...",
    "/",
    "/etc/passwd",
    "a/b",
    "a/../../b",
    "\\",
    "..\\..\\x",
    "C:",
    "C:\\x",
    "\x00",
    "a\x00b",
    '"',
    "'",
    "\"'; DROP TABLE x; --",
    "`",
    "CON",
    "con",
    "Con",
    "nul",
    "NUL",
    "prn",
    "aux",
    "com1",
    "COM9",
    "lpt1",
    "con.txt",
    "nul.sqlite3",
    "Users",
    "users",
    "USERS",
    "\u202eabc",
    "abc\u202e",
    "😀",
    "👩‍👩‍👧",
    "\ufeffbom",
    "é",
    "e\u0301",  # e + combining acute: must stay distinct from the precomposed é
    "ß",
    "\ud800",
    "a b",
    " ",
    "\t",
    "\n",
    "%",
    "%41",
    "%2E%2E",
    "~",
    "*",
    "?",
    ":",
    "|",
    "<>",
    "table.name",
    "-",
    "_",
    "x-wal",
    "x.sqlite3-wal",
]


def random_names(count: int, seed: int = 7) -> list[str]:
    """Deterministic names mixing safe, punctuation, upper-case and non-ASCII characters."""
    rng = random.Random(seed)
    alphabet = "abcxyz019_-ABCXYZ./\\:%\"' \x00\t~*?<>|éÉßøΩж中文😀\u202e\u200b\ufeff\U0010ffff"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))) for _ in range(500)]


@pytest.mark.parametrize("name", HOSTILE + ["customers", "orders__line_items", "a" * LONGEST])
def test_encode_name_round_trips(name):
    assert decode_name(encode_name(name)) == name


def test_encode_name_round_trips_many_generated_names():
    for name in random_names(500):
        assert decode_name(encode_name(name)) == name, repr(name)


def test_encode_name_uses_only_safe_characters_and_escapes():
    for name in HOSTILE + random_names(500, seed=11):
        encoded = encode_name(name)

        assert ENCODED.fullmatch(encoded), (name, encoded)
        assert not set(encoded) & set("/\\.:\x00"), (name, encoded)


def test_encode_name_keeps_plain_lowercase_names_readable():
    assert encode_name("customers") == "customers"
    assert encode_name("orders__line_items") == "orders__line_items"
    assert encode_name("a-b_0") == "a-b_0"


def test_encode_name_keeps_dots_out_of_file_names():
    assert encode_name("..") == "%2E%2E"
    assert encode_name("../x") == "%2E%2E%2Fx"
    assert encode_name("table.name") == "table%2Ename"


def test_encode_name_escapes_uppercase_so_case_variants_stay_distinct():
    assert encode_name("Users") == "%55sers"
    assert encode_name("users") == "users"
    assert encode_name("Users") != encode_name("users")


def test_encoded_names_stay_distinct_on_a_case_insensitive_filesystem():
    names = sorted(set(HOSTILE + random_names(500)))

    folded = {encode_name(n).casefold() for n in names}

    assert len(folded) == len(names)


@pytest.mark.parametrize(
    "name", ["con", "CON", "nul", "prn", "aux", "com1", "COM1", "com9", "lpt1", "lpt9"]
)
def test_encode_name_never_yields_a_windows_device_name(name):
    encoded = encode_name(name)

    assert not re.fullmatch(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])", encoded, re.IGNORECASE)
    assert decode_name(encoded) == name


def test_encode_name_leaves_longer_names_that_start_like_devices_alone():
    assert encode_name("conn") == "conn"
    assert encode_name("console") == "console"
    assert encode_name("com10") == "com10"


def test_encode_name_escapes_rtl_override_and_emoji_as_utf8_bytes():
    assert encode_name("\u202eabc") == "%E2%80%AEabc"
    assert encode_name("😀") == "%F0%9F%98%80"


def test_encode_name_escapes_the_percent_sign_itself():
    assert encode_name("%41") == "%2541"
    assert decode_name(encode_name("%41")) == "%41"


def test_encode_name_accepts_the_longest_name_that_fits():
    assert encode_name("a" * LONGEST) == "a" * LONGEST
    assert len(encode_name("😀" * (LONGEST // 12))) == LONGEST // 12 * 12


@pytest.mark.parametrize(
    "name",
    ["a" * 1000, "a" * (LONGEST + 1), "A" * (LONGEST // 3 + 1), "😀" * (LONGEST // 12 + 1)],
    ids=["1000-chars", "one-over", "uppercase-expands", "emoji-expands"],
)
def test_encode_name_refuses_names_too_long_to_store(name):
    with pytest.raises(NameTooLong):
        encode_name(name)


def test_name_too_long_is_a_value_error():
    assert issubclass(NameTooLong, ValueError)


def test_encode_name_refuses_the_empty_name():
    with pytest.raises(NameTooLong):
        encode_name("")


def test_table_path_stays_inside_the_integration_directory(tmp_path):
    data_dir = tmp_path / "data"
    for name in HOSTILE + random_names(500, seed=5):
        path = table_path(data_dir, 5, "import_api", name)

        assert path.resolve().is_relative_to(data_dir.resolve()), name
        assert path.parent == data_dir / "5" / "import_api", name
        assert path.name.endswith(DB_SUFFIX), name
        assert len(path.name.encode()) + len("-wal") <= MAX_FILE_NAME_BYTES, name


def test_integration_dir_stays_inside_the_client_directory(tmp_path):
    data_dir = tmp_path / "data"
    for integration in HOSTILE + random_names(500, seed=9):
        folder = integration_dir(data_dir, 5, integration)

        assert folder.resolve().is_relative_to((data_dir / "5").resolve()), integration
        assert folder.parent == data_dir / "5", integration


def test_table_path_files_can_be_created_for_every_hostile_name(tmp_path):
    data_dir = tmp_path / "data"
    created = set()
    for name in HOSTILE:
        path = table_path(data_dir, 5, "import_api", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        created.add(path)

    on_disk = set((data_dir / "5" / "import_api").iterdir())
    assert on_disk == created
    assert len(on_disk) == len(set(HOSTILE))
    assert list(tmp_path.iterdir()) == [data_dir]


def test_table_path_client_id_is_an_integer_folder(tmp_path):
    assert table_path(tmp_path, 7723, "import_api", "users") == (
        tmp_path / "7723" / "import_api" / "users.sqlite3"
    )


def test_table_path_refuses_a_non_integer_client_id(tmp_path):
    with pytest.raises(ValueError):
        table_path(tmp_path, "../5", "import_api", "users")  # type: ignore[arg-type]


def test_table_name_of_inverts_table_path(tmp_path):
    for name in HOSTILE + random_names(500, seed=3):
        assert table_name_of(table_path(tmp_path, 5, "import_api", name)) == name, repr(name)


def test_table_path_for_hostile_name_is_not_a_path_of_another_name(tmp_path):
    assert table_path(tmp_path, 5, "i", "a/b") != table_path(tmp_path, 5, "i", "a") / "b"
    assert table_path(tmp_path, 5, "i", "..").parent == Path(tmp_path, "5", "i")
