"""axe-core (WCAG 2.1 A and AA rules) on every callrec page each role reaches, in Chromium.

Each role signs in to the demo, opens a patient, a complaint and a call, then every callrec page its
menu offers; axe runs on each. A screenshot of a page with violations is saved under
CALLREC_SCREENSHOT_DIR (CI keeps it) and the test names the rules, the elements and the page.
"""
import os

import pytest
import sqlalchemy as sa

from tests.test_browser import browser, demo_server, page, pytestmark, sign_in  # noqa: F401 (fixtures)

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright") if not os.environ.get(
    "CALLREC_REQUIRE_BROWSER") else __import__("axe_playwright_python.sync_playwright", fromlist=["Axe"])

WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
              "resultTypes": ["violations"]}
ROLES = ["owner", "manager", "handler", "trainer", "reception", "dpo"]


def _objects(app):
    from callrec_plugin.models import Recording
    from examples.practice_host.models import Complaint, db

    with app.app_context():
        recording = db.session.scalar(sa.select(Recording).where(Recording.practice_ref == "p1",
                                                                 Recording.patient_ref.is_not(None),
                                                                 Recording.status == "active").limit(1))
        complaint = db.session.scalar(sa.select(Complaint.id).where(Complaint.practice_id == "p1").limit(1))
        return recording.patient_ref, complaint, recording.id


def _menu_pages(page):
    hrefs = page.locator("a[href^='/callrec/']").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    return sorted({href.split("#")[0] for href in hrefs
                   if "/audio" not in href and "/download" not in href and not href.endswith(".csv")})


def _violations(page, url):
    results = axe_module.Axe().run(page, options=WCAG_21_AA)
    found = [(rule["id"], rule["impact"], [node["target"] for node in rule["nodes"]][:3])
             for rule in results.response["violations"]]
    if found and os.environ.get("CALLREC_SCREENSHOT_DIR"):
        name = url.strip("/").replace("/", "_").replace("?", "_") or "root"
        page.screenshot(path=os.path.join(os.environ["CALLREC_SCREENSHOT_DIR"], f"axe-{name}.png"), full_page=True)
    return found


@pytest.mark.parametrize("username", ROLES)
def test_every_page_a_role_reaches_has_no_wcag_21_aa_violation(demo_server, page, username):  # noqa: F811
    app, base = demo_server
    patient_ref, complaint_ref, recording_id = _objects(app)
    sign_in(page, base, username)
    visited, problems = set(), {}
    start = [f"/patients/{patient_ref}", f"/complaints/{complaint_ref}", f"/callrec/recordings/{recording_id}"]
    page.goto(base + start[0])
    for path in start + _menu_pages(page):
        if path in visited:
            continue
        visited.add(path)
        response = page.goto(base + path)
        if response is None or response.status >= 400:
            continue  # a page this role may not open answers with the refusal page, checked by other tests
        page.wait_for_load_state()
        if found := _violations(page, path):
            problems[path] = found
    assert len(visited) >= (10 if username in ("owner", "manager") else 3), sorted(visited)
    assert not problems, f"{username}: axe found WCAG 2.1 A/AA violations: {problems}"
