"""HMAC-SHA256 signing of ingest API requests (``POST /callrec/api/recordings``).

A phone system sends, with every request:

``X-Callrec-Practice``
    the practice reference; selects the shared secret (``CALLREC_API_SECRETS[practice]``).
``X-Callrec-Timestamp``
    Unix time in whole seconds, ASCII digits only (e.g. ``1700000000``). Rejected when more than
    ``CALLREC_API_MAX_SKEW_SECONDS`` (default 300) from the server's clock, either way.
``X-Callrec-Nonce``
    16-64 characters of ``[A-Za-z0-9_-]``, fresh for every request (e.g. ``secrets.token_urlsafe(24)``).
    The server remembers nonces per practice for at least twice the allowed skew and refuses a
    repeat (replay). That store is not part of this module.
``X-Callrec-Content-SHA256``
    lower-case hex SHA-256 of the raw request body, exactly the bytes sent (the whole multipart
    body, boundaries included).
``Content-Length``
    the body's length in bytes, as HTTP sends it anyway (a chunked upload without it is refused).
``X-Callrec-Signature``
    lower-case hex HMAC-SHA256, keyed with the practice's secret, of the canonical string::

        METHOD + "\\n" + PATH + "\\n" + TIMESTAMP + "\\n" + NONCE + "\\n" + BODY_SHA256_HEX
        + "\\n" + CONTENT_LENGTH

    CONTENT_LENGTH is the body's length in decimal digits (``0`` for a GET). The body's digest and
    length are declared in signed headers, so the server checks the signature *before it reads a
    byte of the body* (an unsigned 100 MiB upload costs it nothing), then reads exactly the declared
    length, hashing as it goes, and refuses the upload at its end if the digest differs.

    METHOD is upper case (``POST``); PATH is the URL path the client requested, without scheme or
    host, with its query string exactly as sent when there is one
    (``/callrec/api/recordings``, ``/callrec/api/should-record?number=07700900001``; behind a proxy
    that mounts the app under a prefix, include the prefix: the server uses ``script_root + path``).
    A GET has an empty body: BODY_SHA256 is the SHA-256 of no bytes.

The server checks, in order: practice known, timestamp fresh (:func:`check_timestamp`), nonce
well-formed (:func:`check_nonce`), digest header well-formed, the signature over the declared digest
and length (:func:`verify`), the nonce unseen, and only then reads the body, whose SHA-256 must equal
the declared one (:func:`check_digest_matches`); all comparisons in constant time. Clients can build
the headers with :func:`signed_headers` (from the body, or from its digest and length for a body
streamed from a file).

Pure: stdlib only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

__all__ = [
    "HEADER_PRACTICE",
    "HEADER_TIMESTAMP",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_CONTENT_SHA256",
    "DEFAULT_MAX_SKEW_SECONDS",
    "SignatureError",
    "body_sha256",
    "canonical_string",
    "sign",
    "verify",
    "check_timestamp",
    "check_nonce",
    "check_body_digest",
    "check_content_length",
    "signed_headers",
]

HEADER_PRACTICE = "X-Callrec-Practice"
HEADER_TIMESTAMP = "X-Callrec-Timestamp"
HEADER_NONCE = "X-Callrec-Nonce"
HEADER_SIGNATURE = "X-Callrec-Signature"
HEADER_CONTENT_SHA256 = "X-Callrec-Content-SHA256"
DEFAULT_MAX_SKEW_SECONDS = 300

_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_METHOD = re.compile(r"[A-Za-z]{1,16}")
_LENGTH = re.compile(r"[0-9]{1,15}")


class SignatureError(Exception):
    """A signed request failed a check; ``reason`` is safe to return to the client."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def body_sha256(body: bytes) -> str:
    """Lower-case hex SHA-256 of the raw request body."""
    return hashlib.sha256(body).hexdigest()


def canonical_string(method: str, path: str, timestamp: int | str, nonce: str, body_sha256_hex: str,
                     content_length: int) -> str:
    """The exact text that is signed. ``ValueError`` if a part could make it ambiguous."""
    if not isinstance(method, str) or not _METHOD.fullmatch(method):
        raise ValueError(f"bad HTTP method {method!r}")
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "\n\r#"):
        raise ValueError("path must start with '/' and have no fragment or line break")
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, str)) or not _TIMESTAMP.fullmatch(str(timestamp)):
        raise ValueError(f"timestamp must be whole non-negative seconds, got {timestamp!r}")
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise ValueError("nonce must be 16-64 characters of A-Z a-z 0-9 _ -")
    if not isinstance(body_sha256_hex, str) or not _HEX64.fullmatch(body_sha256_hex):
        raise ValueError("body_sha256_hex must be 64 hex digits")
    if isinstance(content_length, bool) or not isinstance(content_length, int) or not _LENGTH.fullmatch(
            str(content_length)):
        raise ValueError(f"content_length must be a whole number of bytes, got {content_length!r}")
    return "\n".join((method.upper(), path, str(int(timestamp)), nonce, body_sha256_hex.lower(),
                      str(content_length)))


def _key(secret: bytes | str) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("empty signing secret")
    return key


def sign(secret: bytes | str, method: str, path: str, timestamp: int | str, nonce: str, body_sha256_hex: str,
         content_length: int) -> str:
    """Lower-case hex HMAC-SHA256 of :func:`canonical_string` under ``secret``."""
    message = canonical_string(method, path, timestamp, nonce, body_sha256_hex, content_length).encode("ascii")
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def verify(
    secret: bytes | str,
    method: str,
    path: str,
    timestamp: int | str,
    nonce: str,
    body_sha256_hex: str,
    content_length: int,
    signature_hex: str,
) -> bool:
    """True when ``signature_hex`` is the signature of these parts; constant-time comparison.

    Malformed parts or signature give ``False`` (never an exception), except an empty secret
    (``ValueError``: a server misconfiguration).
    """
    key = _key(secret)
    if not isinstance(signature_hex, str) or not _HEX64.fullmatch(signature_hex.strip()):
        return False
    try:
        expected = sign(key, method, path, timestamp, nonce, body_sha256_hex, content_length)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature_hex.strip().lower())


def check_timestamp(ts_text: str, now: float, max_skew: int = DEFAULT_MAX_SKEW_SECONDS) -> int:
    """Parse ``X-Callrec-Timestamp`` and require ``|ts - now| <= max_skew``; returns the timestamp.

    Raises :class:`SignatureError` for a missing, non-integer, stale or future timestamp.
    """
    if ts_text is None or not isinstance(ts_text, str) or not ts_text.strip():
        raise SignatureError(f"missing {HEADER_TIMESTAMP}")
    text = ts_text.strip()
    if not _TIMESTAMP.fullmatch(text):
        raise SignatureError(f"{HEADER_TIMESTAMP} must be whole seconds since 1970 (digits only)")
    ts = int(text)
    skew = ts - now
    if skew < -max_skew:
        raise SignatureError(f"request timestamp is too old ({int(-skew)} s; at most {max_skew} s allowed)")
    if skew > max_skew:
        raise SignatureError(f"request timestamp is in the future ({int(skew)} s ahead; check the clock)")
    return ts


def check_nonce(nonce: str | None) -> str:
    """Return the nonce if well-formed (16-64 of ``[A-Za-z0-9_-]``), else :class:`SignatureError`."""
    if nonce is None or not isinstance(nonce, str) or not nonce:
        raise SignatureError(f"missing {HEADER_NONCE}")
    if not _NONCE.fullmatch(nonce):
        raise SignatureError(f"{HEADER_NONCE} must be 16-64 characters of A-Z a-z 0-9 _ -")
    return nonce


def check_digest_header(header_value: str | None) -> str:
    """The hex SHA-256 that ``X-Callrec-Content-SHA256`` claims for the body (lower case)."""
    if not header_value or not isinstance(header_value, str):
        raise SignatureError(f"missing {HEADER_CONTENT_SHA256}")
    claimed = header_value.strip().lower()
    if not _HEX64.fullmatch(claimed):
        raise SignatureError(f"{HEADER_CONTENT_SHA256} must be 64 hex digits")
    return claimed


def check_content_length(header_value: str | None, limit: int) -> int:
    """The body length the request declares (``Content-Length``), at most ``limit``.

    :class:`SignatureError` when it is missing (a chunked upload: its length would be known only
    after reading it); ``OverflowError`` when it is over ``limit`` (a 413, not an authentication
    failure)."""
    if header_value is None or not isinstance(header_value, str) or not _LENGTH.fullmatch(header_value.strip()):
        raise SignatureError("send the body with a Content-Length (its length is part of the signature)")
    length = int(header_value.strip())
    if length > limit:
        raise OverflowError(f"the body is {length} bytes, more than the limit of {limit} bytes")
    return length


def check_digest_matches(claimed: str, actual: str) -> str:
    """Require the body's SHA-256 (``actual``, hex) to be the one claimed; returns it."""
    if not hmac.compare_digest(actual, claimed):
        raise SignatureError("request body does not match its SHA-256 header (altered or truncated upload)")
    return actual


def check_body_digest(header_value: str | None, body: bytes) -> str:
    """Require ``X-Callrec-Content-SHA256`` to equal the body's SHA-256; returns the hex digest."""
    return check_digest_matches(check_digest_header(header_value), body_sha256(body))


def signed_headers(
    secret: bytes | str,
    practice: str,
    method: str,
    path: str,
    body: bytes | None,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
    body_sha256_hex: str | None = None,
    content_length: int | None = None,
) -> dict[str, str]:
    """The ``X-Callrec-*`` headers for a request (for clients, examples and tests).

    Give the ``body``, or (to stream a large file without holding it) ``body=None`` with its
    ``body_sha256_hex`` and ``content_length``. The client must send exactly that many bytes with
    ``Content-Length`` set (every HTTP client does so for a body of known length)."""
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_urlsafe(24) if nonce is None else nonce
    if body is not None:
        body_sha256_hex, content_length = body_sha256(body), len(body)
    elif body_sha256_hex is None or content_length is None:
        raise ValueError("give the body, or its body_sha256_hex and content_length")
    return {
        HEADER_PRACTICE: practice,
        HEADER_TIMESTAMP: str(ts),
        HEADER_NONCE: nonce,
        HEADER_CONTENT_SHA256: body_sha256_hex,
        HEADER_SIGNATURE: sign(secret, method, path, ts, nonce, body_sha256_hex, content_length),
    }
