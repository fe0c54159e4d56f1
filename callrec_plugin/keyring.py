"""Key-encryption keys (KEKs): the key ring that wraps each recording's data key.

Keys come from a key file (``CALLREC_KEY_FILE``) and/or an environment variable (named by
``CALLREC_KEYS_ENV``, default ``CALLREC_KEYS``), never from the database. Both hold entries
``key_id:base64key`` (32-byte keys), one per line or separated by ";", newest first; blank lines
and ``#`` comments are ignored. The newest key wraps new data keys; older keys stay to unwrap data
keys not yet re-wrapped (rotation: :func:`add_key_to_file`, then :meth:`KeyRing.rewrap` each
wrapped key whose key id is not :attr:`KeyRing.newest_id`).

Wrapped data key = nonce (12 random bytes) | AES-256-GCM(kek, nonce, data_key,
aad=b"callrec-dek|" + recording_id + b"|" + key_id), so a wrapped key moved to another recording
or relabelled with another key id fails to unwrap.

Imports only the standard library and ``cryptography``. Error messages never contain key material.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import logging
import os
import re
import secrets
import stat

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callrec_plugin.crypto import TamperedError
from callrec_plugin.storage import fsync_dir

__all__ = [
    "KEK_SIZE",
    "KeyRing",
    "KeyRingError",
    "UnwrapError",
    "generate_key_file",
    "add_key_to_file",
    "new_key_id",
]

log = logging.getLogger(__name__)

KEK_SIZE = 32
NONCE_SIZE = 12
_DATA_KEY_SIZE = 32
WRAPPED_SIZE = NONCE_SIZE + _DATA_KEY_SIZE + 16
# Key ids never contain ":" (entry separator), ";" or "#" (text syntax) or "|" (AAD separator).
_KEY_ID_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")  # \Z: "$" would accept a trailing "\n"
_AAD_PREFIX = b"callrec-dek|"


class KeyRingError(Exception):
    """The key ring is missing, empty, misconfigured, or lacks a key id that is needed."""


class UnwrapError(TamperedError):
    """A wrapped data key failed authentication: it was modified, or is being unwrapped for another
    recording id or key id, or the key file holds a different key under that id."""


def _check_key_id(key_id) -> str:
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError(
            f"invalid key id {key_id!r}: use 1-64 characters from A-Z a-z 0-9 _ . -"
        )
    return key_id


def _decode_key(text: str) -> bytes:
    # Standard or URL-safe base64, padding required.
    normalised = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(normalised, validate=True)


def _parse_entries(text: str, source: str) -> list[tuple[str, bytes]]:
    entries: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    number = 0
    for line in text.splitlines():
        for raw in line.split(";"):
            entry = raw.split("#", 1)[0].strip()
            if not entry:
                continue
            number += 1
            where = f"{source} entry {number}"
            if ":" not in entry:
                raise ValueError(f"{where} is malformed: expected 'key_id:base64key'")
            key_id, _, encoded = entry.partition(":")
            key_id = key_id.strip()
            encoded = encoded.strip()
            try:
                _check_key_id(key_id)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            where = f"{source} entry {number} ({key_id!r})"
            try:
                key = _decode_key(encoded)
            except (binascii.Error, ValueError):
                raise ValueError(f"{where}: the key is not valid base64") from None
            if len(key) != KEK_SIZE:
                raise ValueError(
                    f"{where}: the key decodes to {len(key)} bytes, expected {KEK_SIZE}"
                )
            if key_id in seen:
                raise ValueError(f"{where}: duplicate key id {key_id!r}")
            seen.add(key_id)
            entries.append((key_id, key))
    return entries


def _aad(recording_id: str, key_id: str) -> bytes:
    if not isinstance(recording_id, str):
        raise TypeError("recording_id must be a str")
    return _AAD_PREFIX + recording_id.encode("utf-8") + b"|" + key_id.encode("ascii")


class KeyRing:
    """Key-encryption keys, newest first."""

    def __init__(self, keys):
        entries = []
        seen = set()
        for key_id, key in keys:
            _check_key_id(key_id)
            if not isinstance(key, (bytes, bytearray)) or len(key) != KEK_SIZE:
                raise ValueError(f"key {key_id!r} must be {KEK_SIZE} bytes")
            if key_id in seen:
                raise ValueError(f"duplicate key id {key_id!r}")
            seen.add(key_id)
            entries.append((key_id, bytes(key)))
        if not entries:
            raise KeyRingError("the key ring is empty: at least one key-encryption key is needed")
        self._ids = tuple(key_id for key_id, _ in entries)
        self._aeads = {key_id: AESGCM(key) for key_id, key in entries}

    def __repr__(self):  # never shows key material
        return f"<KeyRing {list(self._ids)!r}>"

    @classmethod
    def from_text(cls, text: str, source: str = "key ring") -> "KeyRing":
        """Parse ``key_id:base64key`` entries (lines or ";"-separated, newest first)."""
        entries = _parse_entries(text, source)
        if not entries:
            raise KeyRingError(f"{source} holds no keys")
        return cls(entries)

    @classmethod
    def from_config(cls, config, environ=None) -> "KeyRing":
        """Keys from ``config["CALLREC_KEY_FILE"]`` (first) and the environment variable named by
        ``config["CALLREC_KEYS_ENV"]`` (default ``CALLREC_KEYS``)."""
        if environ is None:
            environ = os.environ
        path = config.get("CALLREC_KEY_FILE")
        env_name = config.get("CALLREC_KEYS_ENV", "CALLREC_KEYS")
        entries: list[tuple[str, bytes]] = []
        if path:
            path = os.fspath(path)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                    mode = os.fstat(f.fileno()).st_mode
            except FileNotFoundError:
                raise KeyRingError(
                    f"CALLREC_KEY_FILE is {path!r}, which does not exist. Create it with: "
                    f"python -c \"from callrec_plugin.keyring import generate_key_file; "
                    f"generate_key_file({path!r})\""
                ) from None
            except OSError as exc:
                raise KeyRingError(f"cannot read CALLREC_KEY_FILE {path!r}: {exc}") from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning(
                    "callrec key file %s is accessible by group or others (mode %o); "
                    "chmod 600 it",
                    path,
                    stat.S_IMODE(mode),
                )
            try:
                entries.extend(_parse_entries(text, f"key file {path}"))
            except ValueError as exc:
                raise KeyRingError(str(exc)) from None
        if env_name:
            text = environ.get(env_name)
            if text:
                try:
                    env_entries = _parse_entries(text, f"environment variable {env_name}")
                except ValueError as exc:
                    raise KeyRingError(str(exc)) from None
                known = dict(entries)
                for key_id, key in env_entries:
                    if key_id in known:
                        if known[key_id] != key:
                            raise KeyRingError(
                                f"key id {key_id!r} is in both the key file and {env_name} "
                                "with different keys"
                            )
                        continue
                    entries.append((key_id, key))
        if not entries:
            sources = []
            if path:
                sources.append(f"the key file {path!r} holds no keys")
            else:
                sources.append("CALLREC_KEY_FILE is not set")
            if env_name:
                sources.append(f"environment variable {env_name} is empty or unset")
            raise KeyRingError(
                "callrec has no key-encryption keys (" + "; ".join(sources) + "). Set "
                "CALLREC_KEY_FILE to a file made with "
                "callrec_plugin.keyring.generate_key_file(path), or put 'key_id:base64key' "
                f"entries in the environment variable {env_name or 'CALLREC_KEYS'}."
            )
        return cls(entries)

    @property
    def newest_id(self) -> str:
        return self._ids[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return self._ids

    def __contains__(self, key_id) -> bool:
        return key_id in self._aeads

    def wrap(self, data_key: bytes, recording_id: str) -> tuple[str, bytes]:
        """Wrap ``data_key`` with the newest key. Returns ``(key_id, nonce | ciphertext | tag)``."""
        if not isinstance(data_key, (bytes, bytearray)) or len(data_key) != _DATA_KEY_SIZE:
            raise ValueError(f"data_key must be {_DATA_KEY_SIZE} bytes")
        key_id = self.newest_id
        nonce = os.urandom(NONCE_SIZE)
        wrapped = nonce + self._aeads[key_id].encrypt(
            nonce, bytes(data_key), _aad(recording_id, key_id)
        )
        return key_id, wrapped

    def unwrap(self, wrapped: bytes, key_id: str, recording_id: str) -> bytes:
        """The data key, or :class:`KeyRingError` (unknown key id) / :class:`UnwrapError`."""
        aead = self._aeads.get(key_id)
        if aead is None:
            raise KeyRingError(
                f"key id {key_id!r} is not in the key ring (known: {', '.join(self._ids)}); "
                "restore the key file entry that held it"
            )
        wrapped = bytes(wrapped)
        if len(wrapped) != WRAPPED_SIZE:
            raise UnwrapError(
                f"wrapped data key for recording {recording_id!r} has {len(wrapped)} bytes, "
                f"expected {WRAPPED_SIZE}"
            )
        try:
            return aead.decrypt(
                wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], _aad(recording_id, key_id)
            )
        except InvalidTag:
            raise UnwrapError(
                f"wrapped data key for recording {recording_id!r} (key id {key_id!r}) failed "
                "authentication: modified, moved from another recording, or the key file holds "
                "a different key under this id"
            ) from None

    def needs_rewrap(self, key_id: str) -> bool:
        """True if a data key wrapped under ``key_id`` should be re-wrapped (rotation)."""
        return key_id != self.newest_id

    def rewrap(self, wrapped: bytes, key_id: str, recording_id: str) -> tuple[str, bytes]:
        """Unwrap with ``key_id`` and wrap again with the newest key (idempotent per row)."""
        data_key = self.unwrap(wrapped, key_id, recording_id)
        return self.wrap(data_key, recording_id)


def new_key_id() -> str:
    """A fresh key id: "k" + UTC date-time + random suffix, e.g. ``k20250314T101500Z-3f9a1c``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return "k" + now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _new_entry() -> tuple[str, str]:
    key_id = new_key_id()
    return key_id, f"{key_id}:{base64.b64encode(os.urandom(KEK_SIZE)).decode('ascii')}"


_FILE_HEADER = (
    "# callrec key-encryption keys, newest first: key_id:base64(32-byte key)\n"
    "# Keep this file secret (mode 0600), outside the database and its backups.\n"
    "# Never delete a key while data keys wrapped with it remain (see rotation in docs/format.md).\n"
)


def _write_private(path: str, text: str, exclusive: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = None
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    finally:
        if fd is not None:
            os.close(fd)


def generate_key_file(path) -> str:
    """Create ``path`` (mode 0600, must not exist) holding one new random key. Returns its id."""
    path = os.fspath(path)
    key_id, line = _new_entry()
    _write_private(path, _FILE_HEADER + line + "\n", exclusive=True)
    return key_id


def add_key_to_file(path) -> str:
    """Prepend a new random key to an existing key file (rotation), atomically. Returns its id.

    The existing entries are kept (they are still needed to unwrap older data keys)."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        old = f.read()
    existing = _parse_entries(old, f"key file {path}")  # refuse to rewrite a broken file
    key_id, line = _new_entry()
    while any(key_id == kid for kid, _ in existing):  # pragma: no cover - 1 in 16M per second
        key_id, line = _new_entry()
    lines = old.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # Insert before the first entry, after any leading comments/blank lines.
    at = 0
    while at < len(lines) and not lines[at].split("#", 1)[0].strip():
        at += 1
    lines.insert(at, line + "\n")
    replace_private_file(path, "".join(lines))
    return key_id


def replace_private_file(path, text):
    """Write ``text`` as the whole of the key file at ``path``, atomically and readable by its owner only:
    a crash leaves the old file or the new one, never half of either."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        _write_private(tmp, text, exclusive=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)
