"""``store/sqlite/tokens.py`` (to ``store/tokens.py``'s contract): push tokens and integrations
in <data_dir>/tokens.sqlite3 (SPEC §2)."""

from __future__ import annotations

import re
import stat

import pytest

from importapi_lite.store.sqlite.tokens import TOKENS_FILE, SqliteTokenStore
from importapi_lite.store.tokens import (
    DEFAULT_INTEGRATION,
    MAX_ACTIVE_TOKENS,
    TokenError,
    hash_secret,
)


@pytest.fixture
def store(tmp_path):
    tokens = SqliteTokenStore(tmp_path)
    yield tokens
    tokens.close()


@pytest.fixture
def other(tmp_path, store):
    """A second store on the same directory, as the CLI is to a running server."""
    tokens = SqliteTokenStore(tmp_path)
    yield tokens
    tokens.close()


def raw_bytes(tmp_path) -> bytes:
    """Everything SQLite has written for the tokens database: main file, WAL and shared memory."""
    files = sorted(tmp_path.glob(TOKENS_FILE + "*"))
    assert tmp_path / TOKENS_FILE in files
    return b"".join(f.read_bytes() for f in files)


# --- create and lookup -----------------------------------------------------------------------


def test_create_returns_a_secret_that_looks_up_to_the_token(store):
    token, secret = store.create(5)

    found = store.lookup(secret)

    assert found == token
    assert (found.client_id, found.integration, found.region) == (
        5,
        DEFAULT_INTEGRATION,
        "north-america",
    )
    assert found.is_active and found.revoked_at is None
    assert found.integration_state == "active"


def test_create_secret_is_64_hex_characters_and_unique(store):
    (_, first), (_, second) = store.create(5), store.create(6)

    assert re.fullmatch(r"[0-9a-f]{64}", first) and re.fullmatch(r"[0-9a-f]{64}", second)
    assert first != second


def test_token_id_is_not_the_secret(store):
    token, secret = store.create(5)

    assert token.id.startswith("tok_")
    assert token.id not in secret and secret not in token.id


def test_lookup_of_an_unknown_secret_is_none(store):
    store.create(5)

    assert store.lookup("0" * 64) is None
    assert store.lookup("") is None
    assert store.lookup("\ud800") is None


def test_lookup_needs_the_exact_secret(store):
    _, secret = store.create(5)

    assert store.lookup(secret.upper()) is None
    assert store.lookup(secret[:-1]) is None
    assert store.lookup(secret + " ") is None
    assert store.lookup(hash_secret(secret)) is None


def test_token_repr_never_shows_the_secret(store):
    token, secret = store.create(5)

    assert secret not in repr(token)
    assert hash_secret(secret) not in repr(token)


def test_create_with_region_and_integration(store):
    token, secret = store.create(7, "sales", "europe")

    assert (token.client_id, token.integration, token.region) == (7, "sales", "europe")
    assert store.lookup(secret).region == "europe"


@pytest.mark.parametrize("integration", ["", "   ", "\t"])
def test_create_refuses_a_blank_integration_name(store, integration):
    with pytest.raises(TokenError):
        store.create(5, integration)


# --- secrets are never stored ------------------------------------------------------------------


def test_secret_never_appears_in_the_database_files(tmp_path, store):
    secrets = [store.create(client)[1] for client in (5, 6, 7)]
    for secret in secrets:
        store.lookup(secret)
    store.revoke(secrets[0])

    written = raw_bytes(tmp_path)

    for secret in secrets:
        assert hash_secret(secret).encode() in written  # we are reading the right bytes
        assert secret.encode() not in written
        assert secret.upper().encode() not in written
        assert bytes.fromhex(secret) not in written


def test_secret_never_appears_in_the_database_file_after_checkpoint(tmp_path):
    store = SqliteTokenStore(tmp_path)
    _, secret = store.create(5)
    store.close()  # the last connection checkpoints the WAL into the main file

    written = (tmp_path / TOKENS_FILE).read_bytes()

    assert hash_secret(secret).encode() in written
    assert secret.encode() not in written and bytes.fromhex(secret) not in written


def test_tokens_file_is_readable_by_its_owner_only(tmp_path, store):
    mode = stat.S_IMODE((tmp_path / TOKENS_FILE).stat().st_mode)

    assert mode == 0o600


# --- revoke ------------------------------------------------------------------------------------


def test_revoke_by_id_makes_the_token_inactive(store):
    token, secret = store.create(5)

    revoked = store.revoke(token.id)

    assert revoked.id == token.id and revoked.revoked_at is not None
    assert not store.lookup(secret).is_active


def test_revoke_by_secret_makes_the_token_inactive(store):
    token, secret = store.create(5)

    revoked = store.revoke(secret)

    assert revoked.id == token.id
    assert store.lookup(secret).revoked_at == revoked.revoked_at


def test_revoke_leaves_other_tokens_active(store):
    first, _ = store.create(5)
    _, second_secret = store.create(5)

    store.revoke(first.id)

    assert store.lookup(second_secret).is_active


def test_revoking_twice_keeps_the_first_time(store):
    token, _ = store.create(5)
    first = store.revoke(token.id)

    again = store.revoke(token.id)

    assert again.revoked_at == first.revoked_at


@pytest.mark.parametrize("what", ["tok_000000000000", "nope", "", "0" * 64])
def test_revoke_of_an_unknown_token_raises(store, what):
    store.create(5)

    with pytest.raises(TokenError):
        store.revoke(what)
    assert all(t.is_active for t in store.tokens())


# --- at most two active tokens per integration ---------------------------------------------------


def test_third_active_token_for_one_integration_is_refused(store):
    assert MAX_ACTIVE_TOKENS == 2
    store.create(5)
    store.create(5)

    with pytest.raises(TokenError, match="revoke one first"):
        store.create(5)
    assert len(store.tokens()) == 2


def test_revoking_a_token_makes_room_for_a_new_one(store):
    first, _ = store.create(5)
    store.create(5)
    store.revoke(first.id)

    token, secret = store.create(5)

    assert store.lookup(secret) == token
    assert sum(t.is_active for t in store.tokens()) == 2


def test_token_limit_is_per_integration_and_per_client(store):
    for _ in range(2):
        store.create(5, "a")
        store.create(5, "b")
        store.create(6, "a")

    assert len(store.tokens()) == 6


def test_tokens_lists_every_token_including_revoked_ones(store):
    first, _ = store.create(5)
    second, _ = store.create(6, "other")
    store.revoke(first.id)

    listed = store.tokens()

    assert [t.id for t in listed] == [first.id, second.id]
    assert [t.is_active for t in listed] == [False, True]


# --- another store on the same directory ---------------------------------------------------------


def test_token_created_by_another_store_is_found_at_once(store, other):
    assert other.lookup("f" * 64) is None

    _, secret = store.create(5)

    assert other.lookup(secret) is not None
    assert other.lookup(secret).client_id == 5


def test_token_revoked_by_another_store_is_seen_at_once(store, other):
    token, secret = store.create(5)
    assert other.lookup(secret).is_active  # now cached in ``other``

    store.revoke(token.id)

    assert not other.lookup(secret).is_active


def test_integration_paused_by_another_store_is_seen_at_once(store, other):
    _, secret = store.create(5)
    assert other.lookup(secret).integration_state == "active"  # now cached in ``other``

    store.set_integration_state(5, DEFAULT_INTEGRATION, "paused")

    assert other.lookup(secret).integration_state == "paused"


def test_tokens_from_another_store_count_towards_the_limit(store, other):
    store.create(5)
    other.create(5)

    with pytest.raises(TokenError):
        store.create(5)


# --- integrations --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["paused", "deleted", "active"])
def test_integration_state_change_is_seen_by_lookup(store, state):
    _, secret = store.create(5)
    store.lookup(secret)

    store.set_integration_state(5, DEFAULT_INTEGRATION, state)

    assert store.lookup(secret).integration_state == state


def test_integration_state_applies_to_every_token_of_the_integration_only(store):
    _, a1 = store.create(5, "a")
    _, a2 = store.create(5, "a")
    _, b = store.create(5, "b")

    store.set_integration_state(5, "a", "paused")

    assert [store.lookup(s).integration_state for s in (a1, a2, b)] == [
        "paused",
        "paused",
        "active",
    ]


def test_paused_integration_can_be_resumed(store):
    _, secret = store.create(5)
    store.set_integration_state(5, DEFAULT_INTEGRATION, "paused")
    assert store.lookup(secret).integration_state == "paused"

    store.set_integration_state(5, DEFAULT_INTEGRATION, "active")

    assert store.lookup(secret).integration_state == "active"


def test_unknown_integration_state_is_refused(store):
    _, secret = store.create(5)

    with pytest.raises(TokenError, match="state must be one of"):
        store.set_integration_state(5, DEFAULT_INTEGRATION, "frozen")
    assert store.lookup(secret).integration_state == "active"


def test_state_of_an_unknown_integration_cannot_be_set(store):
    store.create(5)

    with pytest.raises(TokenError):
        store.set_integration_state(5, "missing", "paused")
    with pytest.raises(TokenError):
        store.set_integration_state(6, DEFAULT_INTEGRATION, "paused")


def test_tokens_survive_reopening_the_store(tmp_path):
    first = SqliteTokenStore(tmp_path)
    token, secret = first.create(5)
    first.close()

    second = SqliteTokenStore(tmp_path)
    try:
        assert second.lookup(secret) == token
    finally:
        second.close()


def test_store_creates_a_missing_data_directory(tmp_path):
    data_dir = tmp_path / "a" / "b"

    store = SqliteTokenStore(data_dir)
    store.close()

    assert (data_dir / TOKENS_FILE).is_file()
