"""Properties of the phone-system parsers: CDR rows as cdr_csv writes them read back field for field,
channel names give their extension, file names print without control characters."""
import datetime as dt
import io
import unicodedata

import pytest
from hypothesis import given, settings, strategies as st

from callrec_plugin.ingest.cdr import channel_extension, read_cdr
from callrec_plugin.ingest.freepbx import NotARecording, parse_name
from callrec_plugin.ingest.freepbx_import import shown
from tests.pbx_tree import LONDON, Leg, cdr_line

FAST = settings(max_examples=200, deadline=None)
extension = st.from_regex(r"[1-9][0-9]{1,5}", fullmatch=True)
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=30)


@FAST
@given(extension, st.sampled_from(["SIP", "PJSIP", "IAX2"]), st.integers(0, 2**32 - 1))
def test_a_phones_channel_names_its_extension(ext, tech, serial):
    assert channel_extension(f"{tech}/{ext}-{serial:08x}") == ext
    assert channel_extension(f"Local/{ext}@from-queue-{serial:08x};1") == ext


@FAST
@given(st.sampled_from(["trunk", "BT-SIPTrunk", "provider_1"]), st.integers(0, 2**32 - 1))
def test_a_trunk_channel_names_no_extension(name, serial):
    assert channel_extension(f"PJSIP/{name}-{serial:08x}") is None
    assert channel_extension(f"DAHDI/i1/07700900{serial % 1000:03d}-{serial:x}") is None


@FAST
@given(name=text, number=st.from_regex(r"0[0-9]{10}", fullmatch=True), userfield=text, account=text,
       talk=st.integers(0, 9999), ring=st.integers(0, 600), seq=st.integers(0, 10**6),
       gmt=st.booleans(), newcolumns=st.booleans())
def test_cdr_rows_as_cdr_csv_writes_them_read_back(name, number, userfield, account, talk, ring, seq, gmt, newcolumns):
    start = dt.datetime(2026, 7, 14, 9, 30, tzinfo=LONDON)
    uniqueid = f"pbx-01-{int(start.timestamp())}.{seq}"
    leg = Leg(uniqueid, number, "01632960000", "from-pstn", f'"{name}" <{number}>', "PJSIP/trunk-00000001",
              "PJSIP/201-00000002", start, ring, talk, disposition="ANSWERED" if talk else "NO ANSWER",
              accountcode=account, userfield=userfield, linkedid=uniqueid, sequence=seq)
    table = read_cdr(io.StringIO(cdr_line(leg, usegmtime=gmt, newcdrcolumns=newcolumns)))
    assert not table.errors
    row = table[uniqueid]
    assert (row.caller_name, row.caller_number, row.userfield) == (name.strip(), number, userfield)
    assert row.accountcode == account.strip() and row.billsec == talk and row.duration == ring + talk
    assert row.linkedid == (uniqueid if newcolumns else "")
    assert row.start == start.astimezone(dt.timezone.utc if gmt else LONDON).replace(tzinfo=None)
    assert (row.answer is None) == (talk == 0)
    assert channel_extension(row.dstchannel) == "201"


@FAST
@given(st.text(max_size=60))
def test_printed_names_carry_no_control_or_bidi_characters(name):
    out = shown(name)
    assert all(unicodedata.category(c) not in ("Cc", "Cs") for c in out)
    assert not any(c in out for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@FAST
@given(system=st.from_regex(r"[a-z][a-z0-9]{0,5}(-[a-z0-9]{1,4}){0,3}", fullmatch=True),
       epoch=st.integers(10**9, 2 * 10**9), seq=st.integers(0, 99999))
def test_a_systemname_with_dashes_is_part_of_the_uniqueid(system, epoch, seq):
    parsed = parse_name(f"in-01632960000-07700900001-20260714-093000-{system}-{epoch}.{seq}.wav")
    assert parsed.uniqueid == f"{system}-{epoch}.{seq}"
    assert (parsed.to_number, parsed.from_number) == ("01632960000", "07700900001")


@pytest.mark.parametrize("name", ["OUT201-20260714-170000-1784044800.30.wav", "g600-20260714-170000-1784044800.31.wav",
                                  "q600-20260714-170000-1784044800.32.WAV", "OUT2001-20260714-170000-pbx-01-1784044800.33.gsm"])
def test_freepbx_2x_names_are_refused_with_the_reason_and_the_way_round(name):
    with pytest.raises(NotARecording) as refused:
        parse_name(f"2026/07/14/{name}")
    reason = str(refused.value)
    assert "FreePBX 2.x recording name" in reason and "signed API" in reason
