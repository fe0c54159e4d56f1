"""The FreePBX import's two ways to learn when recording was paused for a card payment (docs/pbx.md).

1. A sidecar file beside the recording, named like it with the extension ``.silence``
   (``in-201-07700900001-20261130-091500-1700000000.42.silence`` beside ``….wav``): one interval per
   line, ``START END`` in seconds from the start of the recording (decimals allowed), ``#`` comments.
2. The CDR's ``userfield`` (``Set(CDR(userfield)=…)`` in the dialplan): a token
   ``callrec-silence=START-END,START-END`` among ``;``-separated tokens.

Both may be present; their intervals are joined. A malformed sidecar or token refuses the recording
(kept on the phone system, reported by the import): importing it unsilenced would store card details.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import PurePosixPath

from callrec_plugin import silencing
from callrec_plugin.ingest.pipeline import IngestError

SIDECAR_SUFFIX = ".silence"
USERFIELD_KEY = "callrec-silence="
MAX_SIDECAR_BYTES = 64 * 1024
_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class SidecarError(IngestError):
    """The pause information is unreadable: the recording is not imported (it might hold card details)."""


def sidecar_name(recording_name):
    return PurePosixPath(recording_name).stem + SIDECAR_SUFFIX


def is_sidecar(relative):
    return str(relative).endswith(SIDECAR_SUFFIX)


def parse_sidecar(text):
    """'12.5 30.2' lines -> [[start, end], ...] (as strings: exact); SidecarError for anything else."""
    intervals = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise SidecarError(f"the .silence file's line {number} is not 'START END' in seconds")
        intervals.append(parts)
    return _checked(intervals, "the .silence file")


def parse_userfield(userfield):
    """The intervals of a ``callrec-silence=12.5-30.2,45-50`` token of the CDR userfield, or []."""
    intervals = []
    for token in (userfield or "").split(";"):
        token = token.strip()
        if not token.startswith(USERFIELD_KEY):
            continue
        for pair in filter(None, (p.strip() for p in token[len(USERFIELD_KEY):].split(","))):
            start, dash, end = pair.partition("-")
            if not dash:
                raise SidecarError(f"the CDR userfield's {pair!r} is not START-END in seconds")
            intervals.append([start.strip(), end.strip()])
    return _checked(intervals, "the CDR userfield")


def _checked(intervals, where):
    try:
        silencing.parse_intervals(intervals)
    except ValueError as exc:
        raise SidecarError(f"{where}: {exc}") from None
    return intervals


def read_sidecar(parent_fd, recording_name):
    """The sidecar's text beside a recording (opened without following links), or None."""
    try:
        fd = os.open(sidecar_name(recording_name), _FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SidecarError(f"the .silence file cannot be opened ({exc.strerror}); not followed if a link") from None
    with os.fdopen(fd, "rb") as sidecar:
        info = os.fstat(sidecar.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SIDECAR_BYTES:
            raise SidecarError("the .silence file is not a small regular file")
        try:
            return sidecar.read(MAX_SIDECAR_BYTES).decode("utf-8")
        except UnicodeDecodeError:
            raise SidecarError("the .silence file is not UTF-8 text") from None


def intervals_for(beneath, relative, cdr_row):
    """Every interval the sidecar and the CDR userfield report for one recording (None if none)."""
    parent = beneath.parent_fd(relative)
    try:
        text = read_sidecar(parent, PurePosixPath(relative).name)
    finally:
        if parent != beneath.root_fd:
            os.close(parent)
    intervals = parse_sidecar(text) if text else []
    if cdr_row is not None:
        intervals += parse_userfield(getattr(cdr_row, "userfield", ""))
    return intervals or None


def silenced_sha256(fileobj, intervals):
    """SHA-256 of the original as callrec stores it (silenced), so the import can verify its copy
    before it deletes the original."""
    fileobj.seek(0)
    reader = silencing.silenced(fileobj, silencing.plan(fileobj, silencing.parse_intervals(intervals)))
    digest = hashlib.sha256()
    while chunk := reader.read(1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()
