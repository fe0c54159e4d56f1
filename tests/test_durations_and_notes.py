"""How a call's duration and a typed note read on the pages (issue 15, "Smaller"): one duration rule
everywhere (whole seconds truncated, as the browser's player shows them: the panel said 0:13 where the
player said 0:12), and notes shown with the line breaks their writer typed."""
import pytest

from callrec_plugin.formatting import duration_text, lines_text
from callrec_plugin.models import PatientObjection
from tests.factories import add_recording


@pytest.mark.parametrize("seconds, shown", [
    (12.6, "0:12"), (12.0, "0:12"), (59.999, "0:59"), (60, "1:00"), (125, "2:05"), (669.736, "11:09"),
    (3600.5, "60:00"), (0, "0:00"), (None, "0:00"), (-1, "0:00"),
])
def test_a_duration_is_whole_seconds_truncated_as_the_player_shows_it(seconds, shown):
    assert duration_text(seconds) == shown


def test_the_panel_and_the_call_page_say_the_same_duration_as_the_player(app, db_session, login):
    recording = add_recording(db_session, patient_ref="pat1", duration_seconds=12.6)
    client = login("owner")
    panel = client.get("/patients/pat1").get_data(as_text=True)
    call = client.get(f"/callrec/recordings/{recording.id}").get_data(as_text=True)
    for page in (panel, call):
        assert "0:12" in page and "0:13" not in page


def test_a_note_keeps_its_line_breaks_and_nothing_else_becomes_markup():
    assert lines_text("Rang twice.\nWants a letter.") == "Rang twice.<br>Wants a letter."
    assert lines_text("one\r\ntwo\rthree") == "one<br>two<br>three"
    assert lines_text("<b>x</b>\n&") == "&lt;b&gt;x&lt;/b&gt;<br>&amp;"
    assert lines_text("Rita\u202eecnanif") == "Rita[U+202E]ecnanif"  # still shows hidden controls
    assert lines_text(None) == "" and lines_text("") == ""


def test_the_objection_banner_shows_the_notes_line_breaks(app, db_session, login):
    add_recording(db_session, patient_ref="pat1")
    db_session.add(PatientObjection(practice_ref="pA", patient_ref="pat1", note="Rang twice.\nWants a letter.",
                                    recorded_by_ref="reception", recorded_by_name="Rita Reception"))
    db_session.commit()
    page = login("reception").get("/patients/pat1").get_data(as_text=True)
    assert "Rang twice.<br>Wants a letter." in page
