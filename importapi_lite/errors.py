"""The one error tree: every error raised on purpose, with its status and its exact Stitch body.

Rendered in exactly one place, ``middleware.error_middleware``. Nothing here imports aiohttp, so
validation, codecs and destinations raise these without knowing about HTTP.

    ImportApiError                  500  {"status": "ERROR", "message": ...}
     ├── NotFound                   404  [mock-defined body]
     ├── MethodNotAllowed           405  text "Method not allowed." (+ Allow, as every 405)
     ├── Unauthorized               401  {"message": "Not Authorized"}
     ├── InvalidRegion              401  {"message": "Invalid region."}
     ├── ConnectionNotActive        401  {"error": "Forbidden", "errors": {...}}
     ├── Forbidden                  403  push: token not associated with the records' client
     ├── PayloadTooLarge            413  {"status": "ERROR", "message": "Request rejected: ..."}
     ├── UnsupportedMediaType       415  push/validate JSON body
     ├── BatchUnsupportedMediaType  415  batch: text "Content-Type must be application/json"
     ├── BadRequest                 400  push: {"status": "ERROR", "message": ...}
     │    └── MalformedBody         400  push and batch: + "error" (parser detail) and "input": null
     ├── BatchInvalid               400  batch: {"error": ...}
     ├── ValidationFailed           422  push/validate: {"status", "error", "errors": [...]}
     ├── RequestTimeout             408  [mock-defined body] (a stalled upload)
     ├── InternalServerError        500  [mock-defined body] (fault injection)
     ├── TooManyRequests            429  [mock-defined body] (fault injection)
     ├── ServiceUnavailable         503  [mock-defined body]
     ├── GatewayTimeout             504  [mock-defined body]
     └── AdminError                 400  admin API: {"error": code, "message": ...}
          ├── AdminUnauthorized     401  no admin token, or a wrong one
          ├── AdminForbidden        403  a push token: it can never use the admin API
          ├── AdminNotFound         404  unknown route, client, integration, table or fault
          ├── AdminMethodNotAllowed 405  with Allow: the route's methods
          ├── AdminInternalError    500  a bug, logged with its traceback
          └── AdminNotReady         503  readyz: the data directory cannot take writes

Texts marked [mock-defined] are our choices where Stitch documents none (SPEC §15 Q3); they all
live in this module so they can be changed in one place. The admin API is ours, not Stitch's:
every admin error has the one shape of ``AdminError.body()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Body = dict[str, Any] | str


class ImportApiError(Exception):
    """Base of every error we raise on purpose. ``body()`` is what goes on the wire."""

    status = 500

    def __init__(self, message: str = "Internal Server Error") -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> Body:
        return {"status": "ERROR", "message": self.message}

    def headers(self) -> dict[str, str]:
        """Headers the answer needs besides its content type (a 405's ``Allow``)."""
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Worker processes (ingest/workers.py) send errors back pickled. Subclasses take other
        # arguments than their message, so rebuild each from its state, not from its args.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[ImportApiError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class NotFound(ImportApiError):
    status = 404

    def __init__(self) -> None:
        super().__init__("Not Found")  # [mock-defined] SPEC §7


def allow_header(allowed: Iterable[str]) -> dict[str, str]:
    """RFC 9110 §15.5.6: a 405 MUST list the methods the resource supports, in ``Allow``."""
    return {"Allow": ", ".join(sorted(allowed))}


class MethodNotAllowed(ImportApiError):
    status = 405

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__("Method not allowed.")
        self.allowed = frozenset(allowed)

    def body(self) -> Body:
        return self.message  # plain text, SPEC §3.4

    def headers(self) -> dict[str, str]:
        return allow_header(self.allowed)  # Stitch's body as it is; the header is HTTP's rule


class Unauthorized(ImportApiError):
    """Header missing or malformed, token unknown or revoked (SPEC §2)."""

    status = 401

    def __init__(self) -> None:
        super().__init__("Not Authorized")

    def body(self) -> Body:
        return {"message": self.message}


class InvalidRegion(Unauthorized):
    def __init__(self) -> None:
        ImportApiError.__init__(self, "Invalid region.")


class ConnectionNotActive(ImportApiError):
    """The token's integration is paused or deleted."""

    status = 401

    def __init__(self) -> None:
        super().__init__("Connection is not active.")

    def body(self) -> Body:
        return {"error": "Forbidden", "errors": {"error": self.message}}


class Forbidden(ImportApiError):
    """A valid token, but the records name a client it does not belong to."""

    status = 403

    def __init__(self) -> None:
        super().__init__("Access token is not associated with this client.")

    def body(self) -> Body:
        return {"status": "ERROR", "error": "Forbidden", "errors": {"error": self.message}}


class PayloadTooLarge(ImportApiError):
    status = 413

    def __init__(self, size: int) -> None:
        # The docs' placeholder reads "(<BYTE>s bytes)"; we render the size received (SPEC §3.4).
        super().__init__(f"Request rejected: request size ({size} bytes) exceeds the maximum")
        self.size = size


class UnsupportedMediaType(ImportApiError):
    status = 415

    def __init__(self, media_type: str) -> None:
        super().__init__(
            f"Unsupported content-type {media_type}. "
            "Please send application/json or application/transit+json"
        )


class BatchUnsupportedMediaType(ImportApiError):
    status = 415

    def __init__(self) -> None:
        super().__init__("Content-Type must be application/json")

    def body(self) -> Body:
        return self.message  # plain text, SPEC §5.4


class BadRequest(ImportApiError):
    status = 400


class MalformedBody(BadRequest):
    """The body does not parse as JSON or Transit."""

    def __init__(self, detail: str) -> None:
        super().__init__("Malformed json in the body!")
        self.detail = detail

    def body(self) -> Body:
        return {"status": "ERROR", "message": self.message, "error": self.detail, "input": None}


def not_an_array() -> BadRequest:
    return BadRequest("An array of records is expected")


def bad_record_count() -> BadRequest:
    return BadRequest("A request must contain between 1 and 20000 records")  # [mock-defined]


class BatchInvalid(ImportApiError):
    """Any 400 of /v2/import/batch: the body is ``{"error": message}``."""

    status = 400

    def body(self) -> Body:
        return {"error": self.message}


Reason = str | Mapping[str, Sequence[str]]


class ValidationFailed(ImportApiError):
    """Push/validate 422: one ``{"reason": ...}`` per failing record, in request order."""

    status = 422

    def __init__(self, reasons: Sequence[Reason]) -> None:
        super().__init__("Request cannot be processed; see errors.")
        self.reasons = list(reasons)

    def body(self) -> Body:
        return {
            "status": "ERROR",
            "error": self.message,
            "errors": [{"reason": reason} for reason in self.reasons],
        }


def multiple_clients(client_id: int) -> ValidationFailed:
    return ValidationFailed(
        [
            "The batch contains data points for multiple clients. "
            f"Only client_id {client_id} is allowed"
        ]
    )


class ServiceUnavailable(ImportApiError):
    status = 503

    def __init__(self, message: str = "Service Unavailable") -> None:
        super().__init__(message)  # [mock-defined]


class GatewayTimeout(ImportApiError):
    status = 504

    def __init__(self) -> None:
        super().__init__("Gateway Timeout")  # [mock-defined]


class RequestTimeout(ImportApiError):
    """The client took longer than ``read_timeout`` to send its body."""

    status = 408

    def __init__(self) -> None:
        super().__init__("Request Timeout")  # [mock-defined]


class InternalServerError(ImportApiError):
    """An injected 500 (the base class's body, named for what it is)."""

    def __init__(self) -> None:
        super().__init__("Internal Server Error")  # [mock-defined]


class TooManyRequests(ImportApiError):
    status = 429

    def __init__(self) -> None:
        super().__init__("Too Many Requests")  # [mock-defined]


class AdminError(ImportApiError):
    """Every admin API error: ``{"error": code, "message": text}``; ``code`` is stable, for
    programs, and ``message`` says what to do, for people."""

    status = 400
    code = "bad_request"

    def body(self) -> Body:
        return {"error": self.code, "message": self.message}


class AdminUnauthorized(AdminError):
    status = 401
    code = "unauthorized"

    def __init__(self) -> None:
        super().__init__(
            "The admin API needs 'Authorization: Bearer <admin token>'; "
            "`importapi-lite admin-token` prints it"
        )


class AdminForbidden(AdminError):
    status = 403
    code = "forbidden"

    def __init__(self) -> None:
        super().__init__(
            "This is a push token; the admin API needs the admin token "
            "(`importapi-lite admin-token` prints it)"
        )


class AdminNotFound(AdminError):
    status = 404
    code = "not_found"

    def __init__(self, message: str = "No such admin route") -> None:
        super().__init__(message)


class AdminMethodNotAllowed(AdminError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, allowed: Iterable[str]) -> None:
        super().__init__("Method not allowed on this admin route")
        self.allowed = frozenset(allowed)

    def headers(self) -> dict[str, str]:
        return allow_header(self.allowed)


class AdminInternalError(AdminError):
    status = 500
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("Internal error; the server log has the details")


class AdminNotReady(AdminError):
    status = 503
    code = "not_ready"
