"""The audit page: filters, paging, practice scoping and a CSV export that spreadsheets cannot execute."""
import csv
import io

import pytest

from callrec_plugin import audit
from callrec_plugin.identity import Actor
from tests.factories import add_recording

OWNER = Actor(user=None, ref="owner", name="Owner", roles=frozenset({"owner"}), practice_ref="pA")
RECEPTION = Actor(user=None, ref="reception", name="Reception", roles=frozenset({"staff"}), practice_ref="pA")
OTHER = Actor(user=None, ref="ownerB", name="Owner B", roles=frozenset({"owner"}), practice_ref="pB")


@pytest.fixture
def trail(app, db_session):
    call = add_recording(db_session)
    with app.test_request_context():
        audit.record("play", "allowed", actor=OWNER, recording=call, purpose="spot_check", reason="allowed")
        audit.record("play", "denied", actor=RECEPTION, recording=call, reason="no role may play")
        audit.record("view_metadata", "allowed", actor=OTHER, practice_ref="pB", reason="other practice")
        audit.record("play", "denied", actor=RECEPTION, recording=call, reason='=HYPERLINK("http://evil","x")')
    db_session.commit()
    return call


def rows(response):
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_filters_narrow_the_trail_to_the_practice(app, trail, login):
    client = login("owner")
    page = client.get("/callrec/audit").get_data(as_text=True)
    assert "other practice" not in page  # pB's event is not pA's business
    denied = client.get("/callrec/audit?outcome=denied&actor_ref=reception").get_data(as_text=True)
    assert "no role may play" in denied and "spot_check" not in denied.split("<tbody>")[1]
    by_purpose = client.get("/callrec/audit?purpose=spot_check").get_data(as_text=True)
    assert "Management spot check" in by_purpose.split("<tbody>")[1]
    assert "no role may play" not in by_purpose
    assert client.get("/callrec/audit?from=not-a-date").status_code == 400
    empty = client.get("/callrec/audit?from=2001-01-01&to=2001-01-02").get_data(as_text=True)
    assert "<caption>0 events, newest first (page views hidden)</caption>" in empty


def test_recording_patient_and_date_filters_keep_exactly_the_matching_events(app, trail, login, db_session):
    import datetime as dt

    other_call = add_recording(db_session, patient_ref="pat2")
    with app.test_request_context():
        audit.record("play", "allowed", actor=OWNER, recording=other_call, purpose="compliance", reason="pat2 call")
    db_session.commit()
    dpo = login("dpo")

    def reasons(query):
        table = rows(dpo.get(f"/callrec/audit.csv?{query}"))
        return sorted(row[table[0].index("reason")] for row in table[1:])

    trail_reasons = sorted(["allowed", "no role may play", "'=HYPERLINK(\"http://evil\",\"x\")"])
    assert reasons(f"recording_id={trail.id}") == trail_reasons
    assert reasons("patient_ref=pat2") == ["pat2 call"]
    assert reasons(f"recording_id={trail.id}&patient_ref=pat2") == []
    today = dt.datetime.now(dt.timezone.utc).date()
    assert len(reasons(f"from={today}&to={today}")) >= 4  # to= includes the whole day
    assert reasons(f"from={today + dt.timedelta(days=1)}") == []
    assert reasons(f"to={today - dt.timedelta(days=1)}") == []


def test_csv_export_escapes_formulas_and_keeps_the_hash(app, trail, login):
    response = login("dpo").get("/callrec/audit.csv?outcome=denied")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    table = rows(response)
    header, body = table[0], table[1:]
    assert header[0] == "seq" and header[-1] == "hash"
    reasons = [row[header.index("reason")] for row in body]
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in reasons
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in body for cell in row)
    assert all(len(row[header.index("hash")]) == 64 for row in body)


def test_staff_cannot_read_the_audit_trail(app, trail, login):
    assert login("reception").get("/callrec/audit.csv").status_code == 403
