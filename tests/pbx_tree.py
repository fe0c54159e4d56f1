"""A phone system's files laid out exactly as Asterisk and FreePBX write them, for the import tests.

Recordings: FreePBX's ``sub-record-check`` names ``${MIXMON_DIR}${YEAR}/${MONTH}/${DAY}/
${ARG2}-${ARG3}-${FROMEXTEN}-${TIMESTR}-${UNIQUEID}.${MON_FMT}``: the type, the called number, the
caller, local date and time (``STRFTIME(${EPOCH})``), the channel's uniqueid (``systemname-`` first
when asterisk.conf sets one), and ``WAV`` for ``MIXMON_FORMAT=wav49``.

CDR: ``cdr_csv``'s Master.csv, no header; every text field quoted with quotes doubled, numbers bare,
an empty time as nothing; then uniqueid and userfield (cdr.conf ``loguniqueid``/``loguserfield``, as
Asterisk's sample cdr.conf sets them) and peeraccount, linkedid, sequence (``newcdrcolumns=yes``).
Times in UTC with ``usegmtime=yes`` (the sample's setting), else in the phone system's local time.

The day is 14 July 2026, British Summer Time (UTC+1): a CDR read in the wrong zone is an hour out.
"""
import datetime as dt
import struct
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from tests.audio_samples import wav_bytes

LONDON = ZoneInfo("Europe/London")
UTC = dt.timezone.utc


def gsm_frames(frames):
    """Headerless GSM 6.10 (MIXMON_FORMAT=gsm): 33-byte frames, each starting with the 0xD nibble."""
    return b"".join(bytes([0xD0 | (i % 16)]) + bytes([(i * 7) % 256]) * 32 for i in range(frames))


def wav49(blocks):
    """GSM 6.10 in a WAV container, as Asterisk writes MIXMON_FORMAT=wav49 (file extension .WAV)."""
    def chunk(cid, body):
        return cid + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")

    fmt = chunk(b"fmt ", struct.pack("<HHIIHH", 0x31, 1, 8000, 1625, 65, 0) + struct.pack("<HH", 2, 320))
    body = b"WAVE" + fmt + chunk(b"fact", struct.pack("<I", blocks * 320)) + chunk(
        b"data", bytes((i * 13) % 251 for i in range(65 * blocks)))
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass
class Leg:
    """One CDR row (one line of Master.csv)."""

    uniqueid: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    start: dt.datetime  # aware
    ring_seconds: int
    talk_seconds: int  # 0: not answered
    disposition: str = "ANSWERED"
    lastapp: str = "Dial"
    lastdata: str = ""
    accountcode: str = ""
    userfield: str = ""
    linkedid: str = ""
    sequence: int = 0


@dataclass
class Call:
    """A recording file and the CDR rows about it; ``expect`` is what callrec must store."""

    name: str  # the file name FreePBX writes (None: the recording is missing)
    local: dt.datetime  # naive local time in the file name
    legs: list = field(default_factory=list)
    audio: bytes = b""
    expect: dict = field(default_factory=dict)


def epoch(moment):
    return int(moment.timestamp())


def uid(moment, sequence, system=""):
    return f"{system + '-' if system else ''}{epoch(moment)}.{sequence}"


def at(hour, minute, second=0):
    """A moment on 14 July 2026, London time."""
    return dt.datetime(2026, 7, 14, hour, minute, second, tzinfo=LONDON)


def _name(kind, to, frm, local, uniqueid, ext):
    return f"{kind}-{to}-{frm}-{local:%Y%m%d}-{local:%H%M%S}-{uniqueid}.{ext}"


def build_calls():
    calls = []

    # 1. An inbound call to the practice's DID, answered at extension 201 (reception).
    start = at(9, 29, 55)
    u = uid(start, 11)
    calls.append(Call(
        _name("in", "01632960000", "07700900001", at(9, 30).replace(tzinfo=None), u, "wav"), at(9, 30).replace(tzinfo=None),
        [Leg(u, "07700900001", "01632960000", "from-pstn", '"Hughes, Margaret" <07700900001>',
             "PJSIP/trunk-00000010", "PJSIP/201-00000011", start, 5, 64, lastdata="PJSIP/201/sip:201@10.0.0.21,,HhTtr",
             accountcode="surgery", userfield="new-patient", linkedid=u)],
        wav_bytes(3.0, tone=300),
        dict(direction="inbound", staff_user_ref="reception", staff_extension="201", from_number="+447700900001",
             to_number="+441632960000", patient_ref="pat1", caller_name="Hughes, Margaret", accountcode="surgery",
             cdr_userfield="new-patient", started_at=start.astimezone(UTC), disposition="ANSWERED")))

    # 2. A queue call (queue 600): 201 rang out (NO ANSWER), agent 202 answered through a Local channel.
    start = at(10, 0, 0)
    u = uid(start, 12)
    calls.append(Call(
        _name("q", "600", "07700900002", at(10, 0, 40).replace(tzinfo=None), u, "wav"), at(10, 0, 40).replace(tzinfo=None),
        [Leg(u, "07700900002", "600", "ext-queues", '"Ben Patient" <07700900002>', "PJSIP/trunk-00000012",
             "Local/201@from-queue-00000013;1", start, 40, 0, disposition="NO ANSWER", lastapp="Queue",
             lastdata="600,t,,,300", linkedid=u),
         Leg(u, "07700900002", "600", "ext-queues", '"Ben Patient" <07700900002>', "PJSIP/trunk-00000012",
             "Local/202@from-queue-00000015;1", start, 40, 95, lastapp="Queue", lastdata="600,t,,,300",
             linkedid=u, sequence=1)],
        wav_bytes(3.0, tone=350),
        dict(direction="inbound", staff_user_ref="handler", staff_extension="202", from_number="+447700900002",
             to_number="ext:600", patient_ref="pat2", started_at=start.astimezone(UTC))))

    # 3. A ring group (601), recorded as wav49 (.WAV): 202 did not answer, 201 did.
    start = at(10, 30, 0)
    u = uid(start, 13)
    calls.append(Call(
        _name("rg", "601", "07700900005", at(10, 30, 3).replace(tzinfo=None), u, "WAV"), at(10, 30, 3).replace(tzinfo=None),
        [Leg(u, "07700900005", "601", "ext-group", '"" <07700900005>', "PJSIP/trunk-00000016",
             "PJSIP/202-00000017", start, 12, 0, disposition="NO ANSWER", lastdata="PJSIP/202&PJSIP/201,20",
             linkedid=u),
         Leg(u, "07700900005", "601", "ext-group", '"" <07700900005>', "PJSIP/trunk-00000016",
             "PJSIP/201-00000018", start, 12, 70, lastdata="PJSIP/202&PJSIP/201,20", linkedid=u, sequence=1)],
        wav49(100),
        dict(direction="inbound", staff_user_ref="reception", staff_extension="201", from_number="+447700900005",
             patient_ref=None, audio_format="wav", started_at=start.astimezone(UTC))))

    # 4. A transfer: 201 answered, consulted 203 (an extension no member of staff is mapped to) and
    #    transferred the caller; the consultation leg is recorded too. Both legs share the linkedid.
    start = at(11, 0, 0)
    u = uid(start, 14)
    consult = at(11, 0, 30)
    c = uid(consult, 19)
    calls.append(Call(
        _name("in", "01632960000", "07700900004", at(11, 0, 2).replace(tzinfo=None), u, "wav"), at(11, 0, 2).replace(tzinfo=None),
        [Leg(u, "07700900004", "01632960000", "from-pstn", '"Fletcher, Thomas" <07700900004>',
             "PJSIP/trunk-00000020", "PJSIP/201-00000021", start, 4, 40, linkedid=u),
         Leg(u, "07700900004", "01632960000", "from-pstn", '"Fletcher, Thomas" <07700900004>',
             "PJSIP/trunk-00000020", "PJSIP/203-00000023", start + dt.timedelta(seconds=44), 0, 180,
             lastapp="AppDial", linkedid=u, sequence=2)],
        wav_bytes(3.0, tone=400),
        dict(direction="inbound", staff_user_ref=None, staff_extension="203", linkedid=u,
             caller_name="Fletcher, Thomas", started_at=start.astimezone(UTC))))
    calls.append(Call(
        _name("internal", "203", "201", consult.replace(tzinfo=None), c, "wav"), consult.replace(tzinfo=None),
        [Leg(c, "201", "203", "from-internal", '"Reception" <201>', "PJSIP/201-00000022", "PJSIP/203-00000023",
             consult, 3, 10, linkedid=u, sequence=1)],
        wav_bytes(3.0, tone=420),
        dict(direction="internal", staff_extension="203", staff_user_ref=None, linkedid=u,
             started_at=consult.astimezone(UTC))))

    # 5. Outgoing through the outside line ("9") to a UK freephone number, recorded as raw GSM.
    start = at(12, 15, 0)
    u = uid(start, 15)
    calls.append(Call(
        _name("out", "908001111111", "201", at(12, 15, 1).replace(tzinfo=None), u, "gsm"), at(12, 15, 1).replace(tzinfo=None),
        [Leg(u, "201", "908001111111", "from-internal", '"Reception" <201>', "PJSIP/201-00000024",
             "PJSIP/trunk-00000025", start, 6, 50, lastdata="PJSIP/08001111111@trunk,300,T", linkedid=u)],
        gsm_frames(250),
        dict(direction="outbound", staff_user_ref="reception", staff_extension="201", to_number="+448001111111",
             from_number="ext:201", audio_format="gsm", caller_name=None, started_at=start.astimezone(UTC))))

    # 6. Outgoing emergency call from extension 202.
    start = at(12, 40, 0)
    u = uid(start, 16)
    calls.append(Call(
        _name("out", "999", "202", at(12, 40, 1).replace(tzinfo=None), u, "wav"), at(12, 40, 1).replace(tzinfo=None),
        [Leg(u, "202", "999", "from-internal", '"Priya" <202>', "PJSIP/202-00000026", "PJSIP/trunk-00000027",
             start, 2, 120, lastdata="PJSIP/999@trunk,300,T", linkedid=u)],
        wav_bytes(3.0, tone=450),
        dict(direction="outbound", staff_user_ref="handler", staff_extension="202", to_number="service:999",
             external_number="service:999", patient_ref=None, started_at=start.astimezone(UTC))))

    # 7. A phone system whose asterisk.conf sets systemname = pbx-01 (a dash in the system name).
    start = at(13, 0, 0)
    u = uid(start, 50, system="pbx-01")
    calls.append(Call(
        _name("in", "01632960000", "07700900001", at(13, 0, 4).replace(tzinfo=None), u, "wav"), at(13, 0, 4).replace(tzinfo=None),
        [Leg(u, "07700900001", "01632960000", "from-pstn", '"Hughes, Margaret" <07700900001>',
             "PJSIP/trunk-00000030", "PJSIP/202-00000031", start, 4, 30, linkedid=u)],
        wav_bytes(3.0, tone=500),
        dict(direction="inbound", staff_user_ref="handler", staff_extension="202", patient_ref="pat1",
             started_at=start.astimezone(UTC))))

    # 8. An answered call whose recording is missing from the folder.
    start = at(14, 0, 0)
    u = uid(start, 17)
    calls.append(Call(None, at(14, 0, 3).replace(tzinfo=None),
                      [Leg(u, "07700900002", "01632960000", "from-pstn", '"Ben Patient" <07700900002>',
                           "PJSIP/trunk-00000032", "PJSIP/201-00000033", start, 3, 45, linkedid=u)],
                      expect=dict(missing=True, uniqueid=u)))

    # 9. A recording the CDR knows nothing about (an extension call from outside, FROM_DID set).
    local = at(15, 0, 0).replace(tzinfo=None)
    u = uid(at(15, 0, 0), 18)
    calls.append(Call(_name("external", "201", "07700900002", local, u, "wav"), local, [], wav_bytes(3.0, tone=550),
                      dict(direction="inbound", staff_user_ref="reception", staff_extension="201",
                           started_at=at(15, 0, 0).astimezone(UTC), patient_ref="pat2", no_cdr=True)))

    # 10. A recording that is swapped for a symbolic link while the import runs.
    start = at(16, 0, 0)
    u = uid(start, 21)
    calls.append(Call(
        _name("in", "01632960000", "07700900001", at(16, 0, 2).replace(tzinfo=None), u, "wav"), at(16, 0, 2).replace(tzinfo=None),
        [Leg(u, "07700900001", "01632960000", "from-pstn", '"Hughes, Margaret" <07700900001>',
             "PJSIP/trunk-00000040", "PJSIP/201-00000041", start, 2, 25, linkedid=u)],
        wav_bytes(3.0, tone=600), dict(swapped=True)))
    return calls


CALLS = build_calls()
SWAPPED = next(call.name for call in CALLS if call.expect.get("swapped"))
MISSING_UNIQUEID = next(call.expect["uniqueid"] for call in CALLS if call.expect.get("missing"))
NO_CDR = next(call.name for call in CALLS if call.expect.get("no_cdr"))
LEGACY = "OUT201-20260714-170000-1784044800.30.wav"  # FreePBX 2.x: no numbers in the name
CONTROL_NAME = "evil\x1b[2Jname.wav"  # a terminal escape in a file name


def quoted(value):
    """cdr_csv's append_string: always quoted, quotes doubled."""
    return '"' + str(value).replace('"', '""') + '"'


def cdr_line(leg, usegmtime, newcdrcolumns=True):
    zone = UTC if usegmtime else LONDON

    def when(moment):
        return quoted(moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")) if moment else ""

    answered = leg.talk_seconds > 0
    answer = leg.start + dt.timedelta(seconds=leg.ring_seconds) if answered else None
    end = leg.start + dt.timedelta(seconds=leg.ring_seconds + leg.talk_seconds)
    cells = [quoted(v) for v in (leg.accountcode, leg.src, leg.dst, leg.dcontext, leg.clid, leg.channel,
                                 leg.dstchannel, leg.lastapp, leg.lastdata)]
    cells += [when(leg.start), when(answer), when(end), str(leg.ring_seconds + leg.talk_seconds),
              str(leg.talk_seconds), quoted(leg.disposition), quoted("DOCUMENTATION"),
              quoted(leg.uniqueid), quoted(leg.userfield)]
    if newcdrcolumns:
        cells += [quoted(""), quoted(leg.linkedid), str(leg.sequence)]
    return ",".join(cells) + "\n"


def master_csv(usegmtime, newcdrcolumns=True):
    """Master.csv in the order Asterisk writes it: a row when each leg ends."""
    legs = [leg for call in CALLS for leg in call.legs]
    legs.sort(key=lambda leg: leg.start + dt.timedelta(seconds=leg.ring_seconds + leg.talk_seconds))
    return "".join(cdr_line(leg, usegmtime, newcdrcolumns) for leg in legs)


def write_tree(base, usegmtime=True, newcdrcolumns=True):
    """The spool folder (monitor/YYYY/MM/DD/...), Master.csv and a file outside the spool. Returns
    (monitor root, Master.csv path, outside file)."""
    root = base / "monitor"
    for call in CALLS:
        if call.name is None:
            continue
        path = root / f"{call.local:%Y/%m/%d}" / call.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(call.audio)
    day = root / "2026/07/14"
    (day / LEGACY).write_bytes(wav_bytes(2.5))
    (day / CONTROL_NAME).write_bytes(b"not audio")
    outside = base / "etc-shadow.wav"
    outside.write_bytes(wav_bytes(3.0, tone=900))
    cdr = base / "cdr-csv" / "Master.csv"
    cdr.parent.mkdir(parents=True)
    cdr.write_text(master_csv(usegmtime, newcdrcolumns))
    return root, cdr, outside


def swapping_walk(walk, outside):
    """walk_tree, but the SWAPPED recording is replaced by a symbolic link to ``outside`` right after
    it was listed: what an attacker with write access to the spool would race the import with."""
    def walk_and_swap(root):
        for path, parsed in walk(root):
            if path.name == SWAPPED:
                path.unlink()
                path.symlink_to(outside)
            yield path, parsed
    return walk_and_swap
