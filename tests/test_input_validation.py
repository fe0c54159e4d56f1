"""Input that once gave a 500 now gets a clear 4xx; CSV cells and shown text are safe whatever was stored."""
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callrec_plugin.csv_cells import FORMULA_STARTS, safe_cell
from callrec_plugin.formatting import visible_text
from callrec_plugin.ingest import ingest_audio
from callrec_plugin.models import Recording, utcnow
from tests.audio_samples import wav_bytes


@pytest.mark.parametrize("url,status", [
    ("/callrec/audit?to=9999-12-31", 400),
    ("/callrec/audit?from=0001-01-01", 400),
    ("/callrec/audit.csv?to=9999-12-31", 400),
    ("/callrec/audit?page=1000000000000000000000000000000", 400),
    ("/callrec/audit?page=0", 400),
    ("/callrec/audit?page=abc", 400),
    ("/callrec/audit?patient_ref=a%00b", 400),
    ("/callrec/audit?endpoint=x", 200),    # not a filter: ignored, never passed to url_for
    ("/callrec/audit?_method=POST", 200),
    ("/callrec/audit?_external=1&page=1", 200),
    ("/patients/pat1?callrec_page=1000000000000000000000000000000", 200),  # the panel shows an empty page
    ("/callrec/holds/99999999999999999999999/release", 404),
])
def test_input_that_gave_a_500_gets_a_clear_answer(app, db_session, login, url, status):
    client = login("owner")
    response = client.post(url) if url.endswith("/release") else client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]


@pytest.mark.parametrize("text", ["=1+1", " =1+1", "\t=1+1", "\u3000=1+1", "\u00a0+1", "\u200b=cmd", "\ufeff@SUM(A1)",
                                  "＝1+1", " ＋1", "－1", "＠SUM(A1)", "-2", "+44 7700", "\r=1", "\n=1"])
def test_a_cell_a_spreadsheet_would_run_is_neutralised(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["Rita", "", "1+1", "a=b", "07700 900001", "'=already", "e-mail"])
def test_an_ordinary_cell_is_left_as_it_is(text):
    assert safe_cell(text) == text


@given(st.text(max_size=20))
def test_no_cell_starts_with_a_formula_character_after_blanks(text):
    cell = safe_cell(text)
    visible = cell.lstrip()
    assert cell.startswith("'") or not visible or visible[0] not in FORMULA_STARTS
    assert cell in (text, "'" + text)


def test_bidi_and_invisible_controls_are_shown_escaped_and_stored_as_received(app, db_session, login):
    disguised = "Rita \u202eecnanif\u202c\u200b"
    result = ingest_audio(io.BytesIO(wav_bytes(3.0)), practice_ref="pA", started_at=utcnow(), direction="inbound",
                          from_number="+447700900001", to_number="201", source="test", source_ref="bidi-1",
                          staff_name=disguised)
    assert db_session.get(Recording, result.recording_id).staff_name == disguised  # stored as received
    page = login("owner").get(f"/callrec/recordings/{result.recording_id}").get_data(as_text=True)
    assert "Rita [U+202E]ecnanif[U+202C][U+200B]" in page
    assert "\u202e" not in page and "\u200b" not in page
    panel = login("reception").get("/patients/pat1").get_data(as_text=True)
    assert "[U+202E]" in panel and "\u202e" not in panel
    # The CSV is the record as stored (neutralised for spreadsheets only, never rewritten).
    exported = login("owner").get("/callrec/calls.csv")
    assert exported.status_code == 200 and disguised in exported.get_data(as_text=True)


def test_visible_text_keeps_joiners_that_scripts_need_and_markup_stays_markup():
    from markupsafe import Markup

    assert visible_text("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645") == "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert visible_text("👩\u200d⚕️") == "👩\u200d⚕️"
    shown = visible_text(Markup("<b>A\u202eB</b>"))
    assert isinstance(shown, Markup) and shown == Markup("<b>A[U+202E]B</b>")
    assert visible_text(None) is None and visible_text(5) == 5


def test_the_host_s_own_templates_and_finalize_are_left_alone(app):
    from flask import render_template_string

    with app.test_request_context():
        assert render_template_string("{{ name }}", name="A\u202eB") == "A\u202eB"


def test_every_csv_callrec_writes_goes_through_the_neutraliser():
    """A new CSV writer that forgets safe_cell fails here: every module that writes CSV imports it."""
    from pathlib import Path

    import callrec_plugin

    for path in Path(callrec_plugin.__file__).parent.rglob("*.py"):
        source = path.read_text()
        if "csv.writer(" in source or "csv.DictWriter(" in source:
            assert "safe_cell" in source, f"{path} writes CSV without csv_cells.safe_cell"
