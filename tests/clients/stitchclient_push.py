"""Push three records to an Import API push URL with an official Python stitch client.

Usage: ``python stitchclient_push.py URL TOKEN CLIENT_ID``, where URL is the full push URL
(e.g. ``http://127.0.0.1:PORT/v2/import/push``) and ``python`` is a client venv built by
``install.sh``: stitchclient 1.0.1's (``.venv-clients``) or python-stitch-client 0.8.0.post1's.
Neither client may go into the server's venv: both install a top-level ``transit`` package, see
NOTES.md. The two take the URL under different names: 1.0.1 as ``override_stitch_url``, 0.8 as
``stitch_url``; the script passes whichever the installed ``Client`` has.

The records match /work/shared/wire/stitchclient-1.0.1-push.transit.json byte for byte (0.8's
Transit, from transit-python2, encodes them the same): table ``pc``, key ``["id"]``, a tz-aware
datetime, a Decimal, an int above 2^53, a UUID, a bool and a nested object holding a list. The
client itself is used unchanged; the only shim is aliasing the ``collections.abc`` names onto
``collections``, which stitchclient 1.0.1's vendored Transit writer needs on Python 3.10+. Exit 0
when the server acknowledged every record (status < 300), else 1 with the error on stderr. Neither
client sets a timeout: run this under a subprocess timeout.
"""

import collections
import collections.abc
import datetime
import decimal
import inspect
import os
import sys
import uuid

for _name in collections.abc.__all__:
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

# requests honours *_proxy variables; the server under test is always on loopback.
os.environ["no_proxy"] = ",".join(
    filter(
        None, [os.environ.get("no_proxy") or os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]
    )
)

from stitchclient.client import Client  # noqa: E402  (must follow the alias)

TABLE = "pc"
KEY_NAMES = ["id"]
AT = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)  # ~m1767323045000


def records() -> list[dict[str, object]]:
    """Three upserts; key order matches the capture (the client appends ``client_id``)."""
    return [
        {
            "action": "upsert",
            "table_name": TABLE,
            "key_names": KEY_NAMES,
            "sequence": 1000 + i,
            "data": {
                "id": i,
                "at": AT,
                "price": decimal.Decimal("12.345"),
                "big": 2**60 + i,
                "uid": uuid.UUID(int=i),
                "ok": i % 2 == 0,
                "nested": {"k": [1, 2, 3]},
            },
        }
        for i in range(3)
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(f"usage: {argv[0]} URL TOKEN CLIENT_ID", file=sys.stderr)
        return 2
    url, token, client_id = argv[1:]
    acked: list[object] = []
    try:
        parameters = inspect.signature(Client).parameters
        url_keyword = "override_stitch_url" if "override_stitch_url" in parameters else "stitch_url"
        client = Client(int(client_id), token, callback_function=acked.extend, **{url_keyword: url})
        batch = records()
        for i, record in enumerate(batch):
            client.push(record, i)  # buffered: nothing is sent before flush()
        client.flush()
    except Exception as exc:  # RuntimeError on status >= 300, requests errors on connection trouble
        print(f"stitchclient push failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if acked != list(range(len(batch))):
        print(f"stitchclient push incomplete: acknowledged {acked}", file=sys.stderr)
        return 1
    print(f"pushed {len(acked)} records to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
