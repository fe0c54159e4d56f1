"""FreePBX / Asterisk MixMonitor recording trees.

FreePBX (callrecording module, ``sub-record-check``) writes each recording to::

    YYYY/MM/DD/<type>-<to>-<from>-<YYYYMMDD>-<HHMMSS>-<uniqueid>.<ext>

e.g. ``2023/11/14/in-02079460000-07700900123-20231114-101500-1699956900.42.wav``. ``uniqueid`` is the
Asterisk channel unique id (``<epoch>.<sequence>``, prefixed by ``<systemname>-`` when asterisk.conf
sets ``systemname``, which may itself contain dashes: ``pbx-01-1795521600.50``);
``<to>`` and ``<from>`` are raw dialplan values and may be empty, ``unknown`` or ``anonymous``.

Direction, from the ``<type>`` prefix (``MonitorFile.prefix`` keeps the raw value):

==============  ==========  ===================================================================
prefix          direction   why
==============  ==========  ===================================================================
``in``          inbound     inbound route (DID): to = DID, from = caller's number
``external``    inbound     call from outside (``FROM_DID`` set) ringing an extension; FreePBX's
                            ``sub-record-check,exten`` sets ``CALLTYPE=external`` only when the
                            call came in through a DID (queues force it too). to = extension,
                            from = caller's number. It is NOT an outbound trunk call.
``out``         outbound    outbound route: to = dialled number (may still carry an outside-line
                            prefix such as "9"), from = the extension that dialled
``internal``    internal    extension to extension
``q``, ``rg``   inbound,    queue / ring group: to = queue or group number; internal when the
                or internal caller is itself an extension (2-6 digits), else inbound
``exten``,      inferred    older FreePBX (``exten``), one-touch recording (``ondemand``), forced
``ondemand``,               recordings and parked-call pickups: the name does not say, so:
``force``,                  both sides are extensions -> internal; only the caller is an
``parked``,                 extension -> outbound; otherwise -> inbound. Prefer the CDR's view
``parking``                 when one is available.
==============  ==========  ===================================================================

``parse_name(relative_path)`` -> :class:`MonitorFile` or raises :class:`NotARecording`.
Names of FreePBX 2.x (``OUT201-…``, ``g600-…``, ``q600-…``) carry no caller or dialled number; they
are refused with that reason.

``walk_tree(root)`` yields ``(path, MonitorFile | NotARecording)`` for every non-hidden file, in a
sorted, deterministic order, without recursion (any depth); it never follows a symbolic link: links
are reported, and each MonitorFile carries ``listed`` (device, inode) so the importer can check that
the file it opens is the one that was listed.

Pure: stdlib only; ``walk_tree`` only lists directories, it never opens files.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

__all__ = [
    "RECORDING_EXTENSIONS",
    "PREFIX_DIRECTIONS",
    "MonitorFile",
    "NotARecording",
    "parse_name",
    "walk_tree",
]

#: File extensions FreePBX writes for formats callrec can read (wav49 is written as ".WAV").
RECORDING_EXTENSIONS = frozenset({"wav", "gsm", "mp3", "ogg", "opus"})
_HEADERLESS = frozenset({"ulaw", "alaw", "sln", "sln16", "g722", "g729", "g726", "raw", "pcm", "al", "ul"})

#: Fixed direction per prefix; ``None`` means "inferred from the numbers" (see module docstring).
PREFIX_DIRECTIONS: dict[str, str | None] = {
    "in": "inbound",
    "external": "inbound",
    "out": "outbound",
    "internal": "internal",
    "q": None,
    "rg": None,
    "exten": None,
    "ondemand": None,
    "force": None,
    "parked": None,
    "parking": None,
}
_INBOUND_UNLESS_INTERNAL = frozenset({"q", "rg"})

_UNIQUEID = r"(?P<uniqueid>(?:[A-Za-z0-9_.-]+-)?[0-9]+\.[0-9]+)"
# to and from hold no "-"; the systemname in the uniqueid may (asterisk.conf allows it).
_NAME = re.compile(
    r"(?P<prefix>[A-Za-z]+)-(?P<to>[A-Za-z0-9+*#_.@]*)-(?P<from>[A-Za-z0-9+*#_.@]*)"
    r"-(?P<date>[0-9]{8})-(?P<time>[0-9]{6})-" + _UNIQUEID + r"\.(?P<ext>[A-Za-z0-9]+)"
)
_LOOSE_NAME = re.compile(
    r"(?P<prefix>[A-Za-z]+)-(?P<middle>[A-Za-z0-9+*#_.@-]*)"
    r"-(?P<date>[0-9]{8})-(?P<time>[0-9]{6})-" + _UNIQUEID + r"\.(?P<ext>[A-Za-z0-9]+)"
)
_LEGACY_NAME = re.compile(r"(?:OUT|g|q)[0-9]+-[0-9]{8}-[0-9]{6}-" + _UNIQUEID + r"\.[A-Za-z0-9]+")
_EXTENSION_LIKE = re.compile(r"[0-9]{2,6}")


class NotARecording(Exception):
    """A path that is not a FreePBX recording file; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MonitorFile:
    direction: str  # "inbound", "outbound" or "internal"
    to_number: str  # raw, as in the file name ("" when empty)
    from_number: str  # raw, as in the file name ("" when empty)
    started_at_local: dt.datetime  # naive, the phone system's local time
    uniqueid: str  # Asterisk channel unique id, e.g. "1699956900.42"
    extension: str  # lower-cased file extension, e.g. "wav"
    prefix: str = ""  # raw type prefix, e.g. "q", "rg", "external"
    # (st_dev, st_ino) of the file when walk_tree listed it; None from parse_name alone.
    listed: tuple | None = field(default=None, compare=False)


def parse_name(relative_path: str | os.PathLike[str]) -> MonitorFile:
    """Parse a recording's path relative to the import root (or just its file name).

    If the path has directories, its last three must be ``YYYY/MM/DD`` and agree with the date in
    the file name. Absolute paths, ``..``, hidden components, backslashes and non-ASCII file names
    are refused.
    """
    text = os.fspath(relative_path)
    if not isinstance(text, str):
        raise TypeError("relative_path must be a str or os.PathLike[str]")
    if not text:
        raise NotARecording("empty path")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise NotARecording("path contains control characters")
    if "\\" in text:
        raise NotARecording("path contains a backslash")
    path = PurePosixPath(text)
    if path.is_absolute():
        raise NotARecording("path must be relative to the import folder")
    parts = path.parts
    if not parts:
        raise NotARecording("not a file path")
    if any(p == ".." for p in parts):
        raise NotARecording("path climbs out of the import folder ('..')")
    if any(p.startswith(".") for p in parts):
        raise NotARecording("hidden file or folder")
    name = parts[-1]
    if not name.isascii():
        raise NotARecording("file name has non-ASCII characters; not a FreePBX recording name")

    m = _NAME.fullmatch(name)
    if not m:
        raise NotARecording(_why_not(name))
    prefix = m["prefix"].lower()
    if prefix not in PREFIX_DIRECTIONS:
        raise NotARecording(f"unknown recording type prefix {m['prefix']!r}")
    ext = m["ext"].lower()
    if ext not in RECORDING_EXTENSIONS:
        if ext in _HEADERLESS:
            raise NotARecording(
                f"headerless .{ext} audio cannot be checked; set FreePBX to record wav, WAV (wav49), gsm, mp3 or ogg"
            )
        raise NotARecording(f"not a recording file extension: .{m['ext']}")
    to_number, from_number = m["to"], m["from"]
    try:
        started = dt.datetime.strptime(m["date"] + m["time"], "%Y%m%d%H%M%S")
    except ValueError:
        raise NotARecording(f"invalid date/time in file name: {m['date']}-{m['time']}") from None

    dirs = parts[:-1]
    if dirs:
        if len(dirs) < 3 or not (
            re.fullmatch(r"[0-9]{4}", dirs[-3]) and re.fullmatch(r"[0-9]{2}", dirs[-2])
            and re.fullmatch(r"[0-9]{2}", dirs[-1])
        ):
            raise NotARecording("not inside a YYYY/MM/DD folder")
        folder_date = "".join(dirs[-3:])
        if folder_date != m["date"]:
            raise NotARecording(
                f"folder date {'/'.join(dirs[-3:])} does not match the date {m['date']} in the file name"
            )

    return MonitorFile(
        direction=_direction(prefix, to_number, from_number),
        to_number=to_number,
        from_number=from_number,
        started_at_local=started,
        uniqueid=m["uniqueid"],
        extension=ext,
        prefix=prefix,
    )


def _why_not(name: str) -> str:
    if _LEGACY_NAME.fullmatch(name):
        return ("FreePBX 2.x recording name (OUT<extension>, g<group> or q<queue>): it carries no caller or "
                "dialled number, so it is not imported; send such calls through the signed API with the CDR's numbers")
    loose = _LOOSE_NAME.fullmatch(name)
    if loose:
        return (f"cannot tell the 'to' and 'from' numbers apart in {loose['middle']!r} "
                "(expected exactly one '-')")
    return "name does not match <type>-<to>-<from>-<YYYYMMDD>-<HHMMSS>-<uniqueid>.<ext>"


def _direction(prefix: str, to_number: str, from_number: str) -> str:
    fixed = PREFIX_DIRECTIONS[prefix]
    if fixed:
        return fixed
    from_ext = bool(_EXTENSION_LIKE.fullmatch(from_number))
    if prefix in _INBOUND_UNLESS_INTERNAL:
        return "internal" if from_ext else "inbound"
    to_ext = bool(_EXTENSION_LIKE.fullmatch(to_number))
    if from_ext and to_ext:
        return "internal"
    if from_ext and to_number:
        return "outbound"
    return "inbound"


def walk_tree(root: str | os.PathLike[str]) -> Iterator[tuple[Path, MonitorFile | NotARecording]]:
    """Every non-hidden file under ``root`` with its parse result, sorted by path components.

    Hidden files and folders (name starting with ".") are skipped silently. Symbolic links are never
    followed: each is reported as :class:`NotARecording` with what it points at. Unreadable folders
    and special files are reported too. The walk keeps its own stack, so no depth is too deep.
    Raises ``NotADirectoryError``/``FileNotFoundError`` if ``root`` itself is not a directory.
    """
    root_path = Path(root)
    real_root = root_path.resolve(strict=True)
    if not real_root.is_dir():
        raise NotADirectoryError(str(root_path))
    frames = [_folder(root_path, PurePosixPath())]  # one iterator per open folder: no recursion limit
    while frames:
        entry_and_rel = next(frames[-1], None)
        if entry_and_rel is None:
            frames.pop()
            continue
        entry, entry_rel = entry_and_rel
        if isinstance(entry, NotARecording):
            yield entry_rel, entry
            continue
        path = Path(entry.path)
        try:
            if entry.is_symlink():
                yield path, _symlink_result(path, real_root)
            elif entry.is_dir(follow_symlinks=False):
                frames.append(_folder(path, entry_rel))
            elif entry.is_file(follow_symlinks=False):
                yield path, _listed(_parse_or_reason(entry_rel), entry)
            else:
                yield path, NotARecording("not a regular file")
        except OSError as exc:
            yield path, NotARecording(f"cannot read: {exc.strerror or exc}")


def _folder(directory: Path, rel: PurePosixPath):
    """The folder's non-hidden entries, sorted by name, each with its path relative to the root."""
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield NotARecording(f"cannot read folder: {exc.strerror or exc}"), directory
        return
    for entry in entries:
        if not entry.name.startswith("."):
            yield entry, rel / entry.name


def _listed(parsed: MonitorFile | NotARecording, entry: os.DirEntry) -> MonitorFile | NotARecording:
    if isinstance(parsed, NotARecording):
        return parsed
    info = entry.stat(follow_symlinks=False)
    return replace(parsed, listed=(info.st_dev, info.st_ino))


def _symlink_result(path: Path, real_root: Path) -> NotARecording:
    target = path.resolve(strict=False)
    if not target.exists():
        return NotARecording("broken symbolic link")
    if not target.is_relative_to(real_root):
        return NotARecording("symbolic link points outside the import folder (not followed)")
    if target.is_dir():
        return NotARecording("symbolic link to a folder (not followed)")
    return NotARecording("symbolic link (not followed: callrec imports only the regular file itself)")


def _parse_or_reason(rel: PurePosixPath) -> MonitorFile | NotARecording:
    try:
        return parse_name(str(rel))
    except NotARecording as exc:
        return exc
