"""A data request's body as the pipeline takes it, and ``parse``: the one place a body becomes
table batches, on the event loop and in the worker processes alike."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import TableBatch
from .codec import decode_body
from .validation import parse_batch, parse_push


@dataclass(slots=True)  # not frozen: one a request, and frozen costs (see ``models.Upsert``)
class Body:
    """A body of ``push``, ``batch`` or ``validate``, with whose it is and when it came."""

    endpoint: str
    media_type: str
    data: bytes
    client_id: int  # the token's
    integration: str  # the token's: the destination schema
    received_at: str  # every row's _sdc_received_at


def parse(body: Body) -> list[TableBatch]:
    """Decode and validate: the table batches the body sends, or the error to answer (SPEC §3,
    §5). ``validate`` checks as ``push`` does."""
    decoded = decode_body(body.media_type, body.data)
    if body.endpoint == "batch":
        return [parse_batch(decoded)]
    return parse_push(decoded, body.client_id)
