"""``flask callrec import``: a FreePBX/Asterisk monitor tree, optionally with its CDR (Master.csv).

Every file goes through the one ingest pipeline. The source ref is the file's MixMonitor name, so
importing the same tree again finds every call already there and adds nothing.

What a real phone system's files need, and where it is done here:

* who handled the call: the answering extension from the CDR's ``dstchannel`` (``channel`` for an
  outgoing call), which for a queue or ring-group call is the agent who answered, never the queue's
  number; the host maps it to a member of staff (``callrec_staff_for_extension``, in the pipeline);
* the CDR's clock: ``cdr.conf`` may write UTC (``usegmtime=yes``, as Asterisk's sample does) while
  FreePBX names files in local time. The CDR's zone is a setting, and a CDR start that disagrees with
  the file name's time is reported (a whole number of hours: a likely time-zone setting), never
  silently preferred;
* surprises reported: ANSWERED CDR rows with no recording, recordings with no CDR row, files that
  changed between listing and reading; the summary's ``needs_attention`` becomes the exit status;
* no plaintext left behind: with ``remove_originals`` each original is deleted only after its stored
  copy has been read back, decrypted and matched to the original's SHA-256; otherwise the summary
  says how many plaintext originals remain, and the run is recorded for the retention page.

Files are opened beneath the root one folder at a time with ``O_NOFOLLOW`` (a symbolic link is never
followed, wherever it was swapped in) and must be the very regular file the walk listed (device and
inode). File names are printed with control characters escaped.
"""
import datetime as dt
import errno
import hashlib
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

from callrec_plugin.ingest import silence_sidecar
from callrec_plugin.ingest.cdr import channel_extension, read_cdr
from callrec_plugin.ingest.freepbx import NotARecording, walk_tree
from callrec_plugin.ingest.numbers import without_outside_line_prefix
from callrec_plugin.ingest.pipeline import IngestError, ingest_audio
from callrec_plugin.practices import check_practice

__all__ = ["ImportOptions", "ImportSummary", "import_tree", "local_to_utc", "shown", "source_ref",
           "without_outside_line_prefix"]

# A recording's name is stamped when FreePBX first decides to record, which can be a little before
# the CDR's answer or, for a queue call, long after the call came in: its time must fall inside the
# call (start to end), give or take this much.
SLACK = dt.timedelta(seconds=90)
READ_CHUNK = 1024 * 1024
# Asterisk's "s" (start) extension stands where a trunk delivered no dialled number.
NO_NUMBER = {"", "s"}
_EXTENSION_LIKE = frozenset("0123456789")
# Types whose "to" is a queue, ring group or DID, never the person who answered.
_NOT_A_PERSON_TO = frozenset({"in", "q", "rg"})


@dataclass(frozen=True)
class ImportOptions:
    timezone: str = "Europe/London"  # the phone system's clock: FreePBX file names
    cdr_timezone: str | None = None  # the CDR's times: "UTC" for cdr.conf usegmtime=yes; None = timezone
    outside_prefix: str | None = "9"
    region: str = "GB"
    min_age_seconds: int = 60
    remove_originals: bool = False


@dataclass
class ImportSummary:
    root: str = ""
    counts: Counter = field(default_factory=Counter)  # imported, duplicate, skipped, removed
    skipped: list = field(default_factory=list)  # (relative path, reason)
    waiting: list = field(default_factory=list)  # (relative path, reason): still being written
    cdr_errors: list = field(default_factory=list)
    time_warnings: list = field(default_factory=list)  # (relative path, text)
    cdr_without_recording: list = field(default_factory=list)  # CdrRow
    recordings_without_cdr: list = field(default_factory=list)  # relative path
    kept_originals: list = field(default_factory=list)  # (relative path, why it was not removed)
    originals_left: int = 0

    @property
    def needs_attention(self):
        """Anything an operator should look at (files still being recorded are not: the next run takes them)."""
        return bool(self.skipped or self.cdr_errors or self.time_warnings or self.cdr_without_recording
                    or self.recordings_without_cdr or self.kept_originals)

    def lines(self):
        yield (f"imported {self.counts['imported']}, duplicates {self.counts['duplicate']}, "
               f"skipped {self.counts['skipped']}")
        for path, reason in self.skipped:
            yield f"  skipped {shown(path)}: {reason}"
        for path, reason in self.waiting:
            yield f"  not yet {shown(path)}: {reason}"
        for error in self.cdr_errors:
            yield f"  CDR line {error.line}: {error.reason}"
        for path, text in self.time_warnings:
            yield f"  time {shown(path)}: {text}"
        for row in self.cdr_without_recording:
            yield (f"  CDR line {row.line}: ANSWERED call {shown(row.uniqueid)} at {row.start:%Y-%m-%d %H:%M:%S} "
                   f"({shown(row.src)} to {shown(row.dst)}) has no recording in the folder")
        for path in self.recordings_without_cdr:
            yield f"  no CDR row for {shown(path)} (its uniqueid is not in the CDR file)"
        for path, why in self.kept_originals:
            yield f"  original kept {shown(path)}: {why}"
        if self.counts["removed"]:
            yield f"removed {self.counts['removed']} plaintext originals after verifying their encrypted copies"
        if self.originals_left:
            yield (f"{self.originals_left} plaintext recordings remain on the phone system under {shown(self.root)}; "
                   "run again with --remove-originals to delete each once its encrypted copy is verified")
        yield "needs attention: see above" if self.needs_attention else "nothing needs attention"


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text):
    """Text safe to print: control characters (C0, DEL, C1), bidirectional controls and undecodable bytes
    (surrogate escapes from the file system) shown as escapes, never sent raw to a terminal or log."""
    out = []
    for char in str(text):
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's escape for a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or code in (0x200E, 0x200F, 0x061C) or 0x202A <= code <= 0x202E \
                or 0x2066 <= code <= 0x2069:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def local_to_utc(naive, zone):
    """The phone system's wall-clock time as UTC (an hour repeated at the autumn change: the first)."""
    return naive.replace(tzinfo=zone).astimezone(dt.timezone.utc)


def source_ref(path):
    """What makes an imported file the same call next time: its MixMonitor name, which holds the call's
    date, time and uniqueid. Not its path, so importing the tree from another folder adds nothing."""
    name = path.name
    return name if len(name) <= 160 else "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()


# -- who handled the call ---------------------------------------------------------------------------


def _extension_like(number):
    return bool(number) and 2 <= len(number) <= 6 and set(number) <= _EXTENSION_LIKE


def staff_extension(monitor, cdr_row):
    """The extension that handled the call: the CDR's answering channel when there is one, else what the
    file name says (the caller of an outgoing call, the callee of an extension call); never a queue,
    ring group or DID number."""
    if cdr_row is not None and cdr_row.disposition == "ANSWERED":
        first, second = ((cdr_row.channel, cdr_row.dstchannel) if monitor.direction == "outbound"
                         else (cdr_row.dstchannel, cdr_row.channel if monitor.direction == "internal" else ""))
        for channel in (first, second):
            if extension := channel_extension(channel):
                return extension
    if monitor.direction == "outbound":
        return monitor.from_number if _extension_like(monitor.from_number) else None
    if monitor.prefix in _NOT_A_PERSON_TO:
        return None
    for number in (monitor.to_number, monitor.from_number):
        if _extension_like(number):
            return number
    return None


# -- when the call started --------------------------------------------------------------------------


def call_spans(cdr):
    """uniqueid -> (earliest start, latest end) over all its rows: a transferred or queued call's
    rows each cover a part of it, and the call began with the first."""
    spans = {}
    for row in getattr(cdr, "rows", ()):
        first, last = spans.get(row.uniqueid, (row.start, row.end))
        spans[row.uniqueid] = (min(first, row.start), max(last, row.end))
    return spans


def started_at(monitor, span, zone, cdr_zone):
    """(UTC start, warning or None). The CDR's start when it agrees with the file name's time; the file
    name's time, and a warning saying why, when it does not."""
    named = local_to_utc(monitor.started_at_local, zone)
    if span is None:
        return named, None
    start, end = local_to_utc(span[0], cdr_zone), local_to_utc(span[1], cdr_zone)
    if start - SLACK <= named <= end + SLACK:
        return start, None
    for hours in sorted(range(-14, 15), key=abs):
        shift = dt.timedelta(hours=hours)
        if hours and start + shift - SLACK <= named <= end + shift + SLACK:
            return named, (
                f"the CDR's start ({span[0]:%Y-%m-%d %H:%M:%S}) is {abs(hours)} h "
                f"{'before' if hours > 0 else 'after'} the file name's time: a likely time-zone setting "
                f"(cdr.conf usegmtime=yes writes UTC: import with --cdr-timezone UTC). The file name's time was used")
    return named, (f"the CDR's start ({span[0]:%Y-%m-%d %H:%M:%S}) and the file name's time "
                   f"({monitor.started_at_local:%Y-%m-%d %H:%M:%S}) disagree; the file name's time was used")


def call_metadata(monitor, cdr_row, span, options, zone, cdr_zone):
    """The pipeline's keyword arguments for one recording, and a time warning or None."""
    from_number = monitor.from_number
    extra = {}
    if cdr_row is not None:
        from_number = cdr_row.caller_number or from_number
        extra = dict(disposition=cdr_row.disposition or None, accountcode=cdr_row.accountcode[:80] or None,
                     cdr_userfield=cdr_row.userfield[:255] or None, linkedid=cdr_row.linkedid[:64] or None,
                     caller_name=(cdr_row.caller_name[:128] or None) if monitor.direction != "outbound" else None)
    started, warning = started_at(monitor, span, zone, cdr_zone)
    to_number = monitor.to_number
    if monitor.direction == "outbound":
        to_number = without_outside_line_prefix(to_number, options.outside_prefix, options.region)
    return dict(
        started_at=started, direction=monitor.direction,
        from_number=None if from_number in NO_NUMBER else from_number,
        to_number=None if monitor.to_number in NO_NUMBER else to_number,
        staff_extension=staff_extension(monitor, cdr_row), **extra,
    ), warning


# -- opening files safely ---------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class Beneath:
    """Opens files under the import root folder by folder, never following a symbolic link."""

    def __init__(self, root):
        self.root_fd = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the root as named may be a link

    def close(self):
        os.close(self.root_fd)

    def parent_fd(self, relative):
        """A descriptor of the folder holding ``relative`` (caller closes it unless it is the root's)."""
        fd = self.root_fd
        for part in PurePosixPath(relative).parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise Refused(f"its folder {part!r} changed since it was listed ({exc.strerror})") from None
            finally:
                if fd != self.root_fd:
                    os.close(fd)
            fd = next_fd
        return fd

    def open(self, relative, listed):
        """The listed regular file, opened for reading; Refused if it is now a link or another file."""
        parent = self.parent_fd(relative)
        try:
            fd = os.open(PurePosixPath(relative).name, _FILE_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise Refused("it was replaced by a symbolic link after it was listed (not followed)"
                          if exc.errno == errno.ELOOP else f"cannot open it: {exc.strerror}") from None
        finally:
            if parent != self.root_fd:
                os.close(parent)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != listed:
            os.close(fd)
            raise Refused("it is not the regular file that was listed (swapped while importing); not read")
        return os.fdopen(fd, "rb"), info

    def remove(self, relative, listed):
        """Delete the listed file, if its name still points at it."""
        parent = self.parent_fd(relative)
        name = PurePosixPath(relative).name
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if (info.st_dev, info.st_ino) != listed:
                raise Refused("its name now points at another file; nothing deleted")
            os.unlink(name, dir_fd=parent)
        finally:
            if parent != self.root_fd:
                os.close(parent)


def _sha256_of(fileobj):
    digest = hashlib.sha256()
    fileobj.seek(0)
    while chunk := fileobj.read(READ_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def verified_copy(recording_id, original_sha256):
    """None if the stored recording decrypts to exactly the original's bytes, else why not."""
    from callrec_plugin.models import Recording
    from callrec_plugin.playback import open_plaintext
    from callrec_plugin.state import db_session

    recording = db_session().get(Recording, recording_id)
    if recording is None or recording.wrapped_key is None:
        return "the stored copy is gone"
    try:
        with open_plaintext(recording) as reader:
            stored = _sha256_of(reader)
    except Exception as exc:  # any failure to read back means: do not delete the only other copy
        return f"the stored copy could not be read back ({type(exc).__name__})"
    if stored != original_sha256:
        return "the stored copy differs from the original (changed on the way in, or the file changed)"
    return None


# -- the import -------------------------------------------------------------------------------------


def import_tree(root, practice_ref, cdr_path=None, options=None):
    """Import every recording under ``root`` for the practice. Raises UnknownPractice before reading anything."""
    options = options or ImportOptions()
    check_practice(practice_ref)
    root = Path(root)
    zone = ZoneInfo(options.timezone)
    cdr_zone = ZoneInfo(options.cdr_timezone or options.timezone)
    summary = ImportSummary(root=str(root))
    cdr = read_cdr(cdr_path) if cdr_path else {}
    summary.cdr_errors = list(getattr(cdr, "errors", []))
    spans = call_spans(cdr)
    seen_uniqueids, days = set(), set()
    beneath = Beneath(root)
    try:
        for path, parsed in walk_tree(root):
            relative = path.relative_to(root).as_posix()
            if isinstance(parsed, NotARecording):
                if silence_sidecar.is_sidecar(relative):  # read with its recording (docs/pbx.md)
                    continue
                summary.counts["skipped"] += 1
                summary.skipped.append((relative, parsed.reason))
                continue
            seen_uniqueids.add(parsed.uniqueid)
            days.add(parsed.started_at_local.date())
            _import_one(beneath, relative, parsed, practice_ref, cdr, spans, options, zone, cdr_zone, summary)
    finally:
        beneath.close()
    if cdr_path:
        _cross_check(summary, cdr, seen_uniqueids, days, zone, cdr_zone)
    return summary


def _import_one(beneath, relative, monitor, practice_ref, cdr, spans, options, zone, cdr_zone, summary):
    try:
        audio, info = beneath.open(relative, monitor.listed)
    except Refused as refusal:
        summary.counts["skipped"] += 1
        summary.skipped.append((relative, refusal.reason))
        return
    with audio:
        age = dt.datetime.now().timestamp() - info.st_mtime
        if age < options.min_age_seconds:  # MixMonitor writes straight to the final name
            summary.waiting.append((relative, f"modified {age:.0f} s ago, may still be recording: next run"))
            summary.originals_left += 1
            return
        cdr_row = cdr.get(monitor.uniqueid)
        if cdr and cdr_row is None:
            summary.recordings_without_cdr.append(relative)
        metadata, warning = call_metadata(monitor, cdr_row, spans.get(monitor.uniqueid), options, zone, cdr_zone)
        if warning:
            summary.time_warnings.append((relative, warning))
        try:
            silence = silence_sidecar.intervals_for(beneath, relative, cdr_row)  # paused for a card payment
            result = ingest_audio(audio, practice_ref=practice_ref, source="freepbx",
                                  source_ref=source_ref(Path(relative)), silence=silence, **metadata)
        except IngestError as refusal:
            summary.counts["skipped"] += 1
            summary.skipped.append((relative, refusal.reason))
            summary.originals_left += 1
            return
        summary.counts[result.status] += 1
        if result.status == "skipped":
            summary.skipped.append((relative, result.reason))
        if result.recording_id is None or not options.remove_originals:
            summary.originals_left += 1
            return
        why = verified_copy(result.recording_id, silence_sidecar.silenced_sha256(audio, silence) if silence
                            else _sha256_of(audio))
    if why is None:
        try:
            beneath.remove(relative, monitor.listed)
        except (Refused, OSError) as exc:
            why = getattr(exc, "reason", None) or f"could not delete it ({exc})"
    if why is None:
        summary.counts["removed"] += 1
    else:
        summary.kept_originals.append((relative, why))
        summary.originals_left += 1


def _cross_check(summary, cdr, seen_uniqueids, days, zone, cdr_zone):
    """ANSWERED CDR rows of the days the folder covers that have no recording (by uniqueid, or by
    linkedid for the other legs of a transferred call)."""
    covered_links = {row.linkedid for row in cdr.rows if row.uniqueid in seen_uniqueids and row.linkedid}
    reported = set()
    for row in cdr.rows:
        if row.disposition != "ANSWERED" or row.uniqueid in seen_uniqueids or row.uniqueid in reported:
            continue
        if row.linkedid and (row.linkedid in seen_uniqueids or row.linkedid in covered_links):
            continue
        if local_to_utc(row.start, cdr_zone).astimezone(zone).date() not in days:
            continue
        reported.add(row.uniqueid)
        summary.cdr_without_recording.append(row)


def record_run(summary, practice_ref):
    """Keep what the run left on the phone system (the retention page shows it) and audit the run."""
    from callrec_plugin import audit
    from callrec_plugin.identity import SYSTEM
    from callrec_plugin.models import ImportRun
    from callrec_plugin.state import db_session

    session = db_session()
    run = ImportRun(practice_ref=practice_ref, root=shown(summary.root)[:1000],
                    imported=summary.counts["imported"], duplicates=summary.counts["duplicate"],
                    skipped=summary.counts["skipped"], originals_left=summary.originals_left,
                    originals_removed=summary.counts["removed"], needs_attention=summary.needs_attention)
    session.add(run)
    session.flush()
    audit.record("import", "done", actor=SYSTEM, practice_ref=practice_ref, object_type="import_run",
                 object_id=str(run.id),
                 reason=(f"imported {run.imported}, duplicates {run.duplicates}, skipped {run.skipped}, "
                         f"originals removed {run.originals_removed}, left {run.originals_left}"))
    session.commit()
    return run
