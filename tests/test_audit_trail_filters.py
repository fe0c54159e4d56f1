"""The audit trail as an auditor uses it: people and patients by name, actions by label, page views
hidden unless asked, errors beside the field, numbered pages, and a CSV with the same filter."""
import ast
import csv
import datetime as dt
import io
import pathlib
import re

import pytest
from hypothesis import given, strategies as st

from callrec_plugin import audit
from callrec_plugin.audit_labels import LABELS, label
from callrec_plugin.identity import Actor
from callrec_plugin.page_numbers import page_numbers
from callrec_plugin.roles import Action
from tests.factories import add_recording

PLUGIN = pathlib.Path(__file__).resolve().parents[1] / "callrec_plugin"
RITA = Actor(user=None, ref="staff-3", name="Rita Reception", roles=frozenset({"staff"}), practice_ref="pA")
MO = Actor(user=None, ref="staff-9", name="Mo Manager", roles=frozenset({"manager"}), practice_ref="pA")


def written_actions():
    """Every action code callrec writes: Action.* and the literal codes given to the audit writers."""
    codes = {value for name, value in vars(Action).items() if name.isupper()}
    for path in PLUGIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args:
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                first = node.args[0]
                if name in ("record", "_system_event") and isinstance(first, ast.Constant):
                    codes.add(first.value)
            if isinstance(node, ast.Dict):
                codes |= {value.value for key, value in zip(node.keys, node.values)
                          if isinstance(key, ast.Constant) and key.value == "action"
                          and isinstance(value, ast.Constant) and isinstance(value.value, str)}
    return codes


def test_every_action_written_anywhere_has_a_human_label():
    codes = written_actions()
    assert {"hold_placed", "purge", "key_retired", Action.PLAY} <= codes  # the scan sees all three writers
    assert sorted(codes - set(LABELS)) == []
    assert label("hold_placed") == "Hold placed" and label("some_host_action") == "Some host action"


@given(st.integers(1, 500), st.integers(0, 499))
def test_page_numbers_keep_first_last_and_current_in_order(last, offset):
    current = 1 + offset % last
    numbers = page_numbers(current, last)
    shown = [n for n in numbers if n is not None]
    assert shown == sorted(set(shown)) and {1, last, current} <= set(shown)
    assert all(b is not None for a, b in zip(numbers, numbers[1:]) if a is None)  # never two gaps in a row
    assert all(1 <= n <= last for n in shown) and len(numbers) <= 9


@pytest.fixture
def trail(app, db_session):
    ada = add_recording(db_session, patient_ref="pat1")
    ben = add_recording(db_session, patient_ref="pat2")
    with app.test_request_context():
        audit.record(Action.PLAY, "allowed", actor=RITA, recording=ada, purpose="compliance", reason="ADA-PLAY")
        audit.record(Action.PLAY, "denied", actor=MO, recording=ben, reason="BEN-DENIED")
        audit.record("hold_placed", "done", actor=MO, recording=ben, object_type="hold", object_id="7",
                     reason="BEN-HOLD")
        audit.record(Action.HOLD, "allowed", actor=MO, object_type="holds", object_id="list", reason="HOLDS-PAGE")
    db_session.commit()
    return ada, ben


def body(response):
    return response.get_data(as_text=True).split("<tbody>")[-1]


def csv_reasons(response):
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    return sorted(row[table[0].index("reason")] for row in table[1:])


def test_people_and_patients_are_found_by_name(app, trail, login):
    owner = login("owner")
    by_person = body(owner.get("/callrec/audit?person=rita"))
    assert "ADA-PLAY" in by_person and "BEN-DENIED" not in by_person
    assert "staff-3" not in by_person and "Rita Reception" in by_person
    by_patient = body(owner.get("/callrec/audit?patient=Ben"))
    assert "BEN-DENIED" in by_patient and "BEN-HOLD" in by_patient and "ADA-PLAY" not in by_patient
    assert "Ben Patient" in by_patient and "pat2" not in by_patient  # the patient column reads by name
    assert csv_reasons(owner.get("/callrec/audit.csv?patient=ben&person=mo")) == ["BEN-DENIED", "BEN-HOLD"]


def test_a_patient_nobody_matches_is_an_error_beside_the_field(app, trail, login):
    response = login("owner").get("/callrec/audit?patient=Nobody+Known")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'id="patient-errors"[^>]*>No patient of your practice matches this', page)
    assert 'value="Nobody Known"' in page and "<tbody>" not in page  # input kept, nothing searched
    # Another practice's patient is nobody in this one.
    assert login("owner").get("/callrec/audit?patient=Cara").status_code == 400


def test_actions_are_filtered_by_their_label(app, trail, login):
    owner = login("owner")
    page = owner.get("/callrec/audit").get_data(as_text=True)
    assert '<option value="Hold placed">Hold placed</option>' in page
    held = body(owner.get("/callrec/audit?action=Hold+placed"))
    assert "BEN-HOLD" in held and "BEN-DENIED" not in held and ">Hold placed<" in held
    refused = body(owner.get("/callrec/audit?outcome=denied"))
    assert "BEN-DENIED" in refused and "ADA-PLAY" not in refused and ">Refused<" in refused
    assert owner.get("/callrec/audit?action=hold_placed").status_code == 400  # not a choice: said beside it


def test_page_views_are_hidden_unless_asked_for_and_the_csv_follows(app, trail, login):
    owner = login("owner")
    assert "HOLDS-PAGE" not in body(owner.get("/callrec/audit"))
    shown = body(owner.get("/callrec/audit?page_views=y"))
    assert "HOLDS-PAGE" in shown and "Holds page" in shown
    assert "HOLDS-PAGE" not in csv_reasons(owner.get("/callrec/audit.csv"))
    assert "HOLDS-PAGE" in csv_reasons(owner.get("/callrec/audit.csv?page_views=y"))


def test_reversed_dates_are_an_error_beside_to_and_the_csv_refuses_them(app, trail, login):
    owner = login("owner")
    today = dt.date.today()
    response = owner.get(f"/callrec/audit?from={today}&to={today - dt.timedelta(days=2)}")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'id="to-errors"[^>]*>The end date is before the start date', page)
    assert f'value="{today}"' in page and "Nothing was searched" in page
    csv_response = owner.get(f"/callrec/audit.csv?from={today}&to={today - dt.timedelta(days=2)}")
    assert csv_response.status_code == 400 and b"end date is before the start date" in csv_response.data


def test_numbered_pages_mark_the_current_one(app, db_session, login):
    with app.test_request_context():
        for number in range(120):
            audit.record("hold_placed", "done", actor=MO, object_type="hold", object_id=str(number))
    db_session.commit()
    page = login("owner").get("/callrec/audit?page=2&action=Hold+placed").get_data(as_text=True)
    nav = page.split('aria-label="Pages of the audit trail"')[1].split("</nav>")[0]
    assert re.findall(r'page=(\d)', nav) == ["1", "1", "2", "3", "3"]  # previous, 1, 2, 3, next
    assert re.search(r'aria-current="page"><span class="callrec-visually-hidden">Page </span>2<', nav)
    assert "action=Hold+placed" in nav  # the filters are kept across pages


def test_the_person_filter_suggests_the_names_in_the_practices_trail(app, trail, login):
    page = login("owner").get("/callrec/audit").get_data(as_text=True)
    people = page.split('<datalist id="callrec-audit-people">')[1].split("</datalist>")[0]
    assert re.findall(r'<option value="([^"]+)">', people) == sorted(re.findall(r'<option value="([^"]+)">', people))
    assert {"Rita Reception", "Mo Manager"} <= set(re.findall(r'<option value="([^"]+)">', people))
    assert 'list="callrec-audit-people"' in page
