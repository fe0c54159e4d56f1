"""The audit trail, holds and export pages name people and patients; ids are only where a machine reads
(links, form values, data attributes), never in the text a person reads, wherever a name is known."""
from html.parser import HTMLParser

import pytest

from callrec_plugin import audit, holds
from callrec_plugin.identity import Actor
from callrec_plugin.models import ErasureRequest, Export
from callrec_plugin.roles import Action
from tests.factories import add_recording
from tests.subject_access_support import registered
from tests.test_evidence_and_holds import post

RITA = Actor(user=None, ref="staff-3", name="Rita Reception", roles=frozenset({"staff"}), practice_ref="pA")
MO = Actor(user=None, ref="staff-9", name="Mo Manager", roles=frozenset({"manager"}), practice_ref="pA")
IDS = ("staff-3", "staff-9", "pat1", "pat2")


class VisibleText(HTMLParser):
    """The text nodes of a page outside <script>, <style> and <head>: what a person reads."""

    def __init__(self):
        super().__init__()
        self.parts, self.skipping = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self.skipping += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head"):
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def visible(html):
    parser = VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


@pytest.fixture
def world(app, db_session):
    ada = add_recording(db_session, patient_ref="pat1")
    ben = [add_recording(db_session, patient_ref="pat2") for _ in range(2)]
    with app.test_request_context():
        audit.record(Action.PLAY, "allowed", actor=RITA, recording=ada, purpose="compliance", reason="listened")
        audit.record(Action.HOLD, "allowed", actor=MO, object_type="holds", object_id="list", reason="page")
        placed = holds.place_holds(MO, ben, "regulator", "inspection", "CQC-1")
        holds.approve_group_release(RITA, placed[0])  # a first approval, by name
        released = holds.place_holds(RITA, [ada], "investigation", "closed matter")
        holds.approve_group_release(MO, released[0])
    export = Export(practice_ref="pA", kind="subject_access", patient_ref="pat1", requested_by_ref="staff-3",
                    requested_by_name="Rita Reception", status="building", progress_done=1, progress_total=3)
    db_session.add(export)
    db_session.add(ErasureRequest(recording_id=ada.id, practice_ref="pA", reason="asked to be forgotten",
                                  requested_by_ref="staff-3"))
    sar = registered(db_session, "pat1")
    sar.requester_reference = "SAR-2026-07"
    db_session.commit()
    return {"export": export.id, "sar": sar.id}


@pytest.mark.parametrize("user,url", [
    ("owner", "/callrec/audit"), ("owner", "/callrec/audit?page_views=y"), ("dpo", "/callrec/audit"),
    ("owner", "/callrec/audit?patient=Ben"), ("owner", "/callrec/audit?person=rita"),
    ("owner", "/callrec/holds"), ("manager", "/callrec/holds?status=released"),
    ("owner", "/callrec/holds?patient=ben"), ("dpo", "/callrec/exports"), ("dpo", "/callrec/exports/{export}"),
    ("owner", "/callrec/retention"), ("dpo", "/callrec/subject-access"), ("dpo", "/callrec/subject-access/{sar}"),
])
def test_pages_show_names_and_no_internal_ids(app, world, login, user, url):
    response = login(user).get(url.format(**world))
    assert response.status_code == 200, url
    text = visible(response.get_data(as_text=True))
    assert [ref for ref in IDS if ref in text] == [], (url, text[:2000])
    expected = {"/callrec/holds": ["Mo Manager", "Ben Patient", "First approval: Rita Reception"],
                "/callrec/holds?status=released": ["Rita Reception", "Ada Patient", "by Mo Manager"],
                "/callrec/audit?person=rita": ["Rita Reception", "Ada Patient"],
                "/callrec/exports": ["Rita Reception", "Ada Patient"],
                "/callrec/retention": ["requested by Rita Reception"],
                "/callrec/subject-access": ["Ada Patient"], "/callrec/subject-access/{sar}": ["Ada Patient"],
                }.get(url, [])
    assert [name for name in expected if name not in text] == [], url


def test_the_hold_finder_names_the_patient_not_their_id(app, world, login):
    page = post(app, login("owner"), "/callrec/holds", {
        "callrec-hold-find": "1", "callrec-hold-scope": "recording", "callrec-hold-patient_name": "Ben"})
    text = visible(page.get_data(as_text=True))
    assert "Calls of Ben Patient" in text and not any(ref in text for ref in IDS)
