"""One log line, not a traceback, for a request aiohttp could not parse (``serve`` installs it).

aiohttp answers such a request (a NUL byte in a header, a broken request line) with a 400 of its
own and logs the parser's exception on ``aiohttp.server`` with a traceback. Its message quotes the
offending bytes, which may be a header's value and so a token. ``MalformedRequestFilter`` turns
that record into one warning naming the peer and what was malformed; every other record of the
logger (a bug in a handler) keeps its traceback.
"""

from __future__ import annotations

import logging
import re

from aiohttp.http import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"  # aiohttp.log.server_logger: where its protocol logs
# llhttp's reasons are fixed words ("Invalid header value char"); anything else may be data.
_REASON = re.compile(r"[A-Za-z][A-Za-z '-]*")


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's record of an unparsable request; lets every other record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        # aiohttp's message is "Error handling request from %s", the peer its one argument.
        args = record.args if isinstance(record.args, tuple) else ()
        peer = args[0] if len(args) == 1 else "an unknown peer"
        record.msg = "malformed HTTP request from %s: %s; answered %s and closed"
        record.args = (peer, describe(error), error.code)
        record.exc_info = record.exc_text = None
        # A client's mistake, not the server's: a warning at most (aiohttp says error).
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return logging.getLogger(record.name).isEnabledFor(record.levelno)


def describe(error: HttpProcessingError) -> str:
    """What was malformed, quoting nothing the client sent: the exception's class, and the
    parser's reason when it is llhttp's own (aiohttp's C parser puts the bytes on the lines
    after it: ``"Invalid header value char:\\n\\n  b'X-A: \\x00'"``)."""
    kind = type(error).__name__
    reason, has_detail, _ = error.message.partition(":\n")
    if has_detail and _REASON.fullmatch(reason):
        return f"{kind} ({reason})"
    return kind


def quiet_malformed_requests() -> None:
    """Install the filter on aiohttp's server logger, once however often it is called."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
