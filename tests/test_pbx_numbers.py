"""Numbers as phone systems write them: outside-line prefixes, UK and international forms, emergency
and short service numbers, extensions."""
import pytest
from hypothesis import given, settings, strategies as st

from callrec_plugin.ingest.numbers import (
    InvalidNumber,
    is_service,
    normalise,
    number_label,
    without_outside_line_prefix,
)

# (what the PBX wrote, dialled?, stored): dialled = the callee of an outgoing call (out-<to>-<ext>).
TABLE = [
    # UK forms as FreePBX names and CDRs carry them
    ("07700900123", False, "+447700900123"),
    ("447700900123", False, "+447700900123"),  # trunk sending the country code without "+"
    ("+447700900123", False, "+447700900123"),
    ("00447700900123", False, "+447700900123"),
    ("+44 (0)20 7946 0000", False, "+442079460000"),
    ("020 7946 0000", False, "+442079460000"),
    ("01632960000", False, "+441632960000"),
    ("08001111111", True, "+448001111111"),  # freephone
    ("03001231234", True, "+443001231234"),  # 03 non-geographic
    ("sip:07700900123@trunk.example;user=phone", False, "+447700900123"),
    ("tel:+447700900123", False, "+447700900123"),
    # international, as dialled from the UK and as received
    ("0012127360000", True, "+12127360000"),
    ("+12127360000", False, "+12127360000"),
    ("0033142685300", True, "+33142685300"),
    ("+353 1 679 1122", False, "+35316791122"),
    # emergency and short service numbers dialled: never extensions
    ("999", True, "service:999"),
    ("112", True, "service:112"),
    ("111", True, "service:111"),
    ("101", True, "service:101"),
    ("105", True, "service:105"),
    # the same digits on an internal leg are extensions
    ("101", False, "ext:101"),
    ("201", False, "ext:201"),
    ("2001", True, "ext:2001"),
    # withheld
    ("anonymous", False, "withheld"),
    ("", False, "withheld"),
    ("<unknown>", False, "withheld"),
]


@pytest.mark.parametrize("raw,dialled,stored", TABLE)
def test_real_forms(raw, dialled, stored):
    assert normalise(raw, "GB", dialled=dialled) == stored


# (dialled with the outside-line prefix "9", what is kept before normalising)
PREFIXED = [
    ("908001111111", "08001111111"),  # not +908001111111, a valid Turkish number
    ("907700900123", "07700900123"),
    ("902079460000", "02079460000"),
    ("90012127360000", "0012127360000"),
    ("9999", "999"),
    ("9112", "112"),
    ("9111", "111"),
    ("9101", "101"),
    ("07700900123", "07700900123"),  # dialled without the prefix
    ("+447700900123", "+447700900123"),
    ("9201", "9201"),  # 9 + an extension is not an outside number: left alone
    ("912025550123", "912025550123"),  # 9 + digits that are not a number of the region: left alone
]


@pytest.mark.parametrize("dialled,kept", PREFIXED)
def test_outside_line_prefix_is_taken_off_only_when_what_remains_is_valid(dialled, kept):
    assert without_outside_line_prefix(dialled, "9", "GB") == kept


def test_the_turkish_trap():
    kept = without_outside_line_prefix("908001111111", "9", "GB")
    assert normalise(kept, "GB", dialled=True) == "+448001111111"


def test_labels():
    assert number_label("service:999") == "999 (emergency services)"
    assert number_label("service:111") == "111 (NHS 111)"
    assert number_label("service:101") == "101 (police non-emergency)"
    assert number_label("ext:201") == "extension 201"
    assert number_label("+447700900123") == "+447700900123"
    assert number_label(None) == "—"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+ ", max_size=16), st.booleans())
def test_prefix_stripping_never_invents_a_number(text, dialled):
    kept = without_outside_line_prefix(text, "9", "GB")
    assert kept == text or (text.startswith("9") and kept == text[1:])
    try:
        out = normalise(kept, "GB", dialled=dialled)
    except InvalidNumber:
        return
    if is_service(out):
        assert dialled and len(out.split(":")[1]) <= 6
