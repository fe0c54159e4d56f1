"""Asterisk CDR CSV (``Master.csv`` from ``cdr_csv``), keyed on ``uniqueid``.

``cdr_csv`` writes no header and this column order::

    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
    start, answer, end, duration, billsec, disposition, amaflags,
    [uniqueid]  if loguniqueid=yes
    [userfield] if loguserfield=yes
    [peeraccount, linkedid, sequence] if newcdrcolumns=yes

so a row has 16 to 21 columns. With 17 or 20 columns the 17th is taken as ``uniqueid`` when it looks
like one (``1699956900.42``, optionally ``systemname-`` prefixed) and as ``userfield`` otherwise.
Files whose first row is a header are read by column name instead: a first cell "accountcode", or a
row naming both "src" and "uniqueid" (FreePBX's CDR export, where "calldate" stands for "start" and
"recordingfile" is kept).

``read_cdr(path_or_fileobj)`` returns a :class:`CdrTable`: a ``dict`` of ``uniqueid`` ->
:class:`CdrRow` with ``.errors``, a list of :class:`CdrError` (line number, reason) for rows that
could not be used -- nothing is raised for bad rows. Rows without a uniqueid (older configurations
with ``loguniqueid=no``) cannot be matched to a recording and are reported as errors. When several
rows share a uniqueid (queue and ring-group attempts: NO ANSWER rows, then the ANSWERED one;
transfers), the kept row is the first ANSWERED one with the longest ``billsec``; ``.rows`` keeps
every row, in file order.

``channel_extension("PJSIP/202-0000001a")`` -> ``"202"``: the extension behind a channel name
(``SIP/``, ``PJSIP/``, ``IAX2/`` and FreePBX's queue and follow-me ``Local/202@from-queue-…;1``), or
``None`` for a trunk or anything that is not 2-6 digits.

Times are naive ``datetime``: the phone system's local time, or UTC when cdr.conf's ``[csv]`` has
``usegmtime=yes`` (as Asterisk's sample cdr.conf does): the reader cannot tell, the importer's
``--cdr-timezone`` says which ("YYYY-MM-DD HH:MM:SS"; a fraction of a
second is accepted). ``clid`` such as ``"Jane Smith" <07700900123>`` is split into
``caller_name``/``caller_number``; numbers are left raw (see ``numbers.normalise``).

Pure: stdlib only.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, NamedTuple

__all__ = ["CdrRow", "CdrError", "CdrTable", "read_cdr", "parse_clid", "channel_extension", "POSITIONAL_COLUMNS"]

POSITIONAL_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
)
_HEADER_ALIASES = {"calldate": "start"}
_UNIQUEID = re.compile(r"(?:[A-Za-z0-9_.-]+-)?[0-9]+\.[0-9]+")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?")
_NUMBERISH = re.compile(r"[+0-9 ().*#/-]*")


@dataclass(frozen=True)
class CdrRow:
    src: str
    dst: str
    clid: str
    caller_name: str  # "" when clid carries no name
    caller_number: str  # from clid, else src; raw
    start: dt.datetime  # naive local time
    answer: dt.datetime | None  # None if not answered
    end: dt.datetime  # naive local time (start + duration when the column is absent)
    duration: int
    billsec: int
    disposition: str  # ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION (upper case)
    uniqueid: str = ""
    accountcode: str = ""
    dcontext: str = ""
    channel: str = ""
    dstchannel: str = ""
    userfield: str = ""
    linkedid: str = ""
    peeraccount: str = ""
    sequence: str = ""
    lastapp: str = ""
    recordingfile: str = ""  # only in FreePBX exports with a header
    line: int = 0  # line in the file where the row starts


class CdrError(NamedTuple):
    line: int
    reason: str


class CdrTable(dict):
    """``dict[uniqueid, CdrRow]`` (the row that says how the call went) plus ``rows`` (every row, in
    file order) and ``errors: list[CdrError]``."""

    def __init__(self):
        super().__init__()
        self.errors: list[CdrError] = []
        self.rows: list[CdrRow] = []


class _RowProblem(Exception):
    pass


def parse_clid(clid: str) -> tuple[str, str]:
    """``'"Jane Smith" <07700900123>'`` -> ``("Jane Smith", "07700900123")``.

    Also ``Jane <123>``, ``<123>``, ``"Jane"`` and a bare number or name (Asterisk writes just the
    number or just the name when only one is known).
    """
    text = (clid or "").strip()
    m = re.fullmatch(r'"(.*)"\s*<([^<>]*)>', text, re.S)
    if m:
        return m[1].replace('\\"', '"').strip(), m[2].strip()
    m = re.fullmatch(r"(.*?)\s*<([^<>]*)>", text, re.S)
    if m:
        return m[1].strip(), m[2].strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').strip(), ""
    if _NUMBERISH.fullmatch(text):
        return "", text
    return text, ""


_CHANNEL = re.compile(
    r"(?P<tech>[A-Za-z0-9]+)/(?P<resource>[^@;/-]+)(?:@[^;]*)?(?:-[0-9a-fA-F]+)?(?:;[0-9]+)?"
)
_EXTENSION_LIKE = re.compile(r"[0-9]{2,6}")
_PHONE_TECHS = frozenset({"sip", "pjsip", "iax2", "local", "skinny", "sccp", "dahdi"})


def channel_extension(channel: str) -> str | None:
    """``"PJSIP/202-0000001a"``, ``"SIP/202-00000003"``, ``"Local/202@from-queue-00000012;1"`` -> ``"202"``.

    None for a trunk (``PJSIP/trunk-…``, ``DAHDI/i1/…``), an empty channel, or a resource that is not
    2-6 digits."""
    m = _CHANNEL.fullmatch((channel or "").strip())
    if not m or m["tech"].lower() not in _PHONE_TECHS or m["tech"].lower() == "dahdi":
        return None
    resource = m["resource"]
    return resource if _EXTENSION_LIKE.fullmatch(resource) else None


def read_cdr(path_or_fileobj: str | os.PathLike[str] | IO[str] | IO[bytes], encoding: str = "utf-8") -> CdrTable:
    """Read a cdr_csv file (path, text or binary file object); bad rows go to ``.errors``."""
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, encoding=encoding, errors="replace", newline="") as fh:
            return _read(fh)
    return _read(_text_lines(path_or_fileobj, encoding))


def _text_lines(fileobj, encoding: str) -> Iterable[str]:
    if isinstance(fileobj, io.TextIOBase):
        return fileobj
    probe = fileobj.read(0)
    if isinstance(probe, str):
        return fileobj
    return codecs.iterdecode(iter(fileobj), encoding, errors="replace")


def _rows(lines: Iterable[str], errors: list[CdrError]) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(lines, strict=False)
    last = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            errors.append(CdrError(last + 1, f"unreadable CSV: {exc}"))
            last = reader.line_num
            continue
        start, last = last + 1, reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        yield start, row


def _read(lines: Iterable[str]) -> CdrTable:
    table = CdrTable()
    header: dict[str, int] | None = None
    first = True
    for line, row in _rows(lines, table.errors):
        if first:
            first = False
            names = [cell.strip().lower() for cell in row]
            if names[0].lstrip("\ufeff") == "accountcode" or {"src", "uniqueid"} <= set(names):
                names[0] = names[0].lstrip("\ufeff")
                header = {}
                for i, name in enumerate(names):
                    header.setdefault(_HEADER_ALIASES.get(name, name), i)
                missing = [c for c in ("src", "dst", "start", "uniqueid") if c not in header]
                if missing:
                    table.errors.append(
                        CdrError(line, f"header has no {', '.join(missing)} column; no rows read")
                    )
                    return table
                width = len(names)
                continue
        try:
            if header is not None:
                if len(row) != width:
                    raise _RowProblem(f"expected {width} columns like the header, found {len(row)}")
                fields = {name: row[i] for name, i in header.items()}
            else:
                fields = _positional(row)
            cdr = _make_row(fields, line)
        except _RowProblem as exc:
            table.errors.append(CdrError(line, str(exc)))
            continue
        table.rows.append(cdr)
        kept = table.get(cdr.uniqueid)
        if kept is None or _rank(cdr) > _rank(kept):
            table[cdr.uniqueid] = cdr
    return table


def _rank(row: CdrRow) -> tuple[bool, int]:
    return (row.disposition == "ANSWERED", row.billsec)


def _positional(row: list[str]) -> dict[str, str]:
    n = len(row)
    if not 16 <= n <= 21:
        raise _RowProblem(f"expected 16 to 21 columns (Asterisk cdr_csv), found {n}")
    fields = dict(zip(POSITIONAL_COLUMNS, row))
    extra = row[16:]
    if n >= 19:  # newcdrcolumns: peeraccount, linkedid, sequence at the end
        fields["peeraccount"], fields["linkedid"], fields["sequence"] = extra[-3:]
        extra = extra[:-3]
    if len(extra) == 2:
        fields["uniqueid"], fields["userfield"] = extra
    elif len(extra) == 1:
        key = "uniqueid" if _UNIQUEID.fullmatch(extra[0].strip()) else "userfield"
        fields[key] = extra[0]
    return fields


def _make_row(f: dict[str, str], line: int) -> CdrRow:
    uniqueid = f.get("uniqueid", "").strip()
    if not uniqueid:
        raise _RowProblem("no uniqueid (enable loguniqueid in cdr.conf); cannot be matched to a recording")
    start = _time(f, "start", required=True)
    answer = _time(f, "answer", required=False)
    duration = _int(f, "duration")
    billsec = _int(f, "billsec")
    end = _time(f, "end", required=False) if "end" in f else None
    if end is None:
        end = start + dt.timedelta(seconds=duration)
    if end < start:
        raise _RowProblem("end time is before start time")
    clid = f.get("clid", "")
    name, number = parse_clid(clid)
    src = f.get("src", "").strip()
    return CdrRow(
        src=src,
        dst=f.get("dst", "").strip(),
        clid=clid,
        caller_name=name,
        caller_number=number or src,
        start=start,
        answer=answer,
        end=end,
        duration=duration,
        billsec=billsec,
        disposition=f.get("disposition", "").strip().upper(),
        uniqueid=uniqueid,
        accountcode=f.get("accountcode", "").strip(),
        dcontext=f.get("dcontext", "").strip(),
        channel=f.get("channel", "").strip(),
        dstchannel=f.get("dstchannel", "").strip(),
        userfield=f.get("userfield", ""),
        linkedid=f.get("linkedid", "").strip(),
        peeraccount=f.get("peeraccount", "").strip(),
        sequence=f.get("sequence", "").strip(),
        lastapp=f.get("lastapp", "").strip(),
        recordingfile=f.get("recordingfile", "").strip(),
        line=line,
    )


def _time(f: dict[str, str], key: str, required: bool) -> dt.datetime | None:
    text = f.get(key, "").strip()
    if not text:
        if required:
            raise _RowProblem(f"missing {key} time")
        return None
    if not _TIME.fullmatch(text):
        raise _RowProblem(f"bad {key} time {text[:40]!r} (expected YYYY-MM-DD HH:MM:SS)")
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise _RowProblem(f"bad {key} time {text!r} (no such date)") from None


def _int(f: dict[str, str], key: str) -> int:
    text = f.get(key, "").strip()
    if not text:
        return 0
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise _RowProblem(f"bad {key} {text[:20]!r} (expected whole seconds)")
    return int(text)
