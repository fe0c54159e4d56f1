"""``flask callrec import``: a FreePBX/Asterisk monitor tree, optionally with its CDR (Master.csv).

Every file goes through the one ingest pipeline. The source ref is the file's path in the tree, so
importing the same tree again finds every call already there and adds nothing.
"""
import datetime as dt
import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from callrec_plugin.ingest.cdr import read_cdr
from callrec_plugin.ingest.freepbx import NotARecording, walk_tree
from callrec_plugin.ingest.numbers import InvalidNumber, normalise
from callrec_plugin.ingest.pipeline import IngestError, ingest_audio


@dataclass
class ImportSummary:
    counts: Counter = field(default_factory=Counter)  # imported, duplicate, skipped
    skipped: list = field(default_factory=list)  # (relative path, reason)
    cdr_errors: list = field(default_factory=list)

    def lines(self):
        yield (f"imported {self.counts['imported']}, duplicates {self.counts['duplicate']}, "
               f"skipped {self.counts['skipped']}")
        for path, reason in self.skipped:
            yield f"  skipped {path}: {reason}"
        for error in self.cdr_errors:
            yield f"  CDR line {error.line}: {error.reason}"


def local_to_utc(naive, zone):
    """The phone system's wall-clock time as UTC (an hour repeated at the autumn change: the first)."""
    return naive.replace(tzinfo=zone).astimezone(dt.timezone.utc)


def _staff_extension(monitor):
    for number in (monitor.to_number, monitor.from_number):
        if number.isdigit() and 2 <= len(number) <= 6:
            return number
    return None


def without_outside_line_prefix(number, prefix, region):
    """A dialled number with the PBX's outside-line prefix ("9" in many practices) taken off, if that
    is what makes it a valid number; otherwise the number as it was."""
    if not prefix or not number or not number.startswith(prefix):
        return number
    try:
        normalise(number, region)
        return number
    except InvalidNumber:
        stripped = number[len(prefix):]
        try:
            normalise(stripped, region)
            return stripped
        except InvalidNumber:
            return number


# Asterisk's "s" (start) extension stands where a trunk delivered no dialled number.
NO_NUMBER = {"", "s"}


def _call_metadata(monitor, cdr_row, zone, outside_prefix, region):
    from_number = monitor.from_number
    started = monitor.started_at_local
    disposition = None
    if cdr_row is not None:
        from_number = cdr_row.caller_number or from_number
        started, disposition = cdr_row.start, cdr_row.disposition
    return dict(
        started_at=local_to_utc(started, zone), direction=monitor.direction,
        from_number=None if from_number in NO_NUMBER else from_number,
        to_number=None if monitor.to_number in NO_NUMBER
        else without_outside_line_prefix(monitor.to_number, outside_prefix, region),
        staff_extension=_staff_extension(monitor), disposition=disposition,
    )


def _still_being_written(path, min_age_seconds, now):
    # MixMonitor writes straight to the final name: a file changed moments ago may not be finished.
    age = now - path.stat().st_mtime
    return age < min_age_seconds, age


def source_ref(path):
    """What makes an imported file the same call next time: its MixMonitor name, which holds the call's
    date, time and uniqueid. Not its path, so importing the tree from another folder adds nothing."""
    name = path.name
    return name if len(name) <= 160 else "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def import_tree(root, practice_ref, cdr_path=None, timezone="Europe/London", outside_prefix="9", region="GB",
                min_age_seconds=60):
    root = Path(root)
    now = time.time()
    zone = ZoneInfo(timezone)
    summary = ImportSummary()
    cdr = read_cdr(cdr_path) if cdr_path else {}
    summary.cdr_errors = list(getattr(cdr, "errors", []))
    for path, parsed in walk_tree(root):
        relative = path.relative_to(root).as_posix()
        if isinstance(parsed, NotARecording):
            summary.counts["skipped"] += 1
            summary.skipped.append((relative, parsed.reason))
            continue
        recent, age = _still_being_written(path, min_age_seconds, now)
        if recent:
            summary.counts["skipped"] += 1
            summary.skipped.append((relative, f"modified {age:.0f} s ago, may still be recording: next run"))
            continue
        try:
            with open(path, "rb") as audio:
                result = ingest_audio(audio, practice_ref=practice_ref, source="freepbx", source_ref=source_ref(path),
                                      **_call_metadata(parsed, cdr.get(parsed.uniqueid), zone, outside_prefix, region))
        except IngestError as refusal:
            summary.counts["skipped"] += 1
            summary.skipped.append((relative, refusal.reason))
            continue
        summary.counts[result.status] += 1
        if result.status == "skipped":
            summary.skipped.append((relative, result.reason))
    return summary
