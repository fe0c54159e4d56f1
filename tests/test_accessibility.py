"""Every callrec page and panel: form controls have labels, tables have captions and headers,
ids are unique, and there is exactly one h1 on a full page."""
from html.parser import HTMLParser

import pytest

from callrec_plugin.models import Assessment, ComplaintLink, Hold, PatientObjection
from tests.conftest import csrf_from
from tests.factories import add_recording


class PageCheck(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.duplicate_ids, self.labels_for, self.controls = set(), set(), set(), []
        self.tables = self.captions = self.header_cells = self.h1 = 0
        self.in_label = 0
        self.references = []  # (attribute, id) of aria-describedby / aria-labelledby

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            (self.duplicate_ids if attrs["id"] in self.ids else self.ids).add(attrs["id"])
        for attribute in ("aria-describedby", "aria-labelledby"):
            self.references += [(attribute, ref) for ref in (attrs.get(attribute) or "").split()]
        if tag == "label":
            self.in_label += 1
            if attrs.get("for"):
                self.labels_for.add(attrs["for"])
        if tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            self.controls.append((attrs.get("id"), attrs.get("aria-label"), self.in_label > 0, attrs.get("name")))
        self.tables += tag == "table"
        self.captions += tag == "caption"
        self.header_cells += tag == "th"
        self.h1 += tag == "h1"

    def handle_endtag(self, tag):
        if tag == "label":
            self.in_label -= 1

    def dangling_references(self):
        return [(attribute, ref) for attribute, ref in self.references if ref not in self.ids]

    def unlabelled(self):
        return [name for control_id, aria, wrapped, name in self.controls
                if not (aria or wrapped or (control_id and control_id in self.labels_for))]


@pytest.fixture
def pages(app, db_session):
    call = add_recording(db_session, staff_user_ref="reception")
    db_session.add_all([
        ComplaintLink(recording_id=call.id, practice_ref="pA", complaint_ref="cX", linked_by_ref="owner"),
        Hold(recording_id=call.id, practice_ref="pA", kind="regulator", reason="CQC", placed_by_ref="owner"),
        PatientObjection(practice_ref="pA", patient_ref="pat1", recorded_by_ref="reception"),
        Assessment(recording_id=call.id, practice_ref="pA", staff_user_ref="reception", assessor_ref="owner",
                   outcome="meets"),
    ])
    db_session.commit()
    return [f"/callrec/recordings/{call.id}", "/callrec/holds", "/callrec/retention", "/callrec/assessments",
            "/callrec/audit", "/callrec/jobs", "/callrec/exports", "/callrec/disclosures", "/patients/pat1",
            "/complaints/cX"]


def test_pages_are_labelled_and_structured(app, login, pages):
    client = login("owner")
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        check = PageCheck()
        check.feed(response.get_data(as_text=True))
        assert check.unlabelled() == [], f"{url}: controls without a label"
        assert not check.duplicate_ids, f"{url}: duplicate ids {check.duplicate_ids}"
        assert check.dangling_references() == [], f"{url}: aria references to no element"
        assert check.tables == check.captions, f"{url}: a table without a caption"
        assert check.tables == 0 or check.header_cells > 0, url
        if url.startswith("/callrec/"):
            assert check.h1 == 1, f"{url}: {check.h1} h1 headings"


def test_forms_sent_back_with_errors_point_at_their_messages(app, login, pages):
    client = login("owner")
    recording_page = pages[0]
    token = csrf_from(client.get(recording_page).get_data(as_text=True))
    for url, fields in ((recording_page + "/grants", {"purpose": "bogus", "action": "play"}),
                        ("/callrec/subject-access", {"patient_ref": ""})):
        response = client.post(url, data={"csrf_token": token, **fields})
        assert response.status_code == 400, url
        check = PageCheck()
        check.feed(response.get_data(as_text=True))
        assert check.references, f"{url}: the invalid field names no error message"
        assert check.dangling_references() == [], f"{url}: aria references to no element"
