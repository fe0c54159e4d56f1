"""Each role's day in Chromium, as a person works through the demo practice: reception, complaint handler,
manager (with the owner as the second approver), data protection lead and trainer.

Every step goes through the pages with what a person sees (labels, roles, button names), waits for the
state it needs, and runs axe-core (WCAG 2.1 A and AA) on every page it reaches. When a journey fails and
CALLREC_SCREENSHOT_DIR is set, the screenshots of all its pages (and of the page it failed on) are saved
there, named after the journey and the step, for CI to keep.
"""
import calendar
import contextlib
import datetime as dt
import io
import os
import re
import zipfile

import pytest
import sqlalchemy as sa

from tests.test_axe import WCAG_21_AA, axe_module
from tests.test_browser import browser, pytestmark, running_demo, sign_in, sync_api  # noqa: F401 (fixtures)

WAIT_MS = 30_000  # a busy 2-core machine: wait for states generously, never sleep
expect = sync_api.expect
expect.set_options(timeout=WAIT_MS)
WIDE = {"width": 1280, "height": 900}
ROLES = ["owner", "manager", "handler", "trainer", "reception", "dpo"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo practice (with its one call of more than ten minutes) served by a thread of this process;
    bundles are built in-process, as in the demo."""
    with running_demo(tmp_path_factory.mktemp("journeys"), 40, secret_key="journeys") as served:
        yield served


@pytest.fixture
def page(browser):  # noqa: F811
    context = browser.new_context(viewport=WIDE, accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    yield page
    context.close()


class Day:
    """One journey: checks each page it reaches and keeps its screenshots for a failure report."""

    def __init__(self, page, name):
        self.page, self.name, self.shots = page, name, []
        self.directory = os.environ.get("CALLREC_SCREENSHOT_DIR")

    def check(self, step):
        """The page as it is now: loaded, kept as a screenshot (if wanted) and free of WCAG 2.1 A/AA
        violations."""
        self.page.wait_for_load_state()
        if self.directory:
            # JPEG: a full page as PNG costs Chromium several times longer to encode, on every page
            self.shots.append((step, self.page.screenshot(full_page=True, type="jpeg", quality=70)))
        violations = [(rule["id"], [node["target"] for node in rule["nodes"]][:3])
                      for rule in axe_module.Axe().run(self.page, options=WCAG_21_AA).response["violations"]]
        assert not violations, f"{self.name}, {step} ({self.page.url}): axe found {violations}"

    def save(self):
        if not self.directory:
            return
        os.makedirs(self.directory, exist_ok=True)
        with contextlib.suppress(Exception):  # the page may be gone; the kept screenshots still count
            self.shots.append(("failed here", self.page.screenshot(full_page=True, type="jpeg", quality=70)))
        for index, (step, png) in enumerate(self.shots, start=1):
            slug = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
            with open(os.path.join(self.directory, f"journey-{self.name}-{index:02d}-{slug}.jpg"), "wb") as out:
                out.write(png)


@contextlib.contextmanager
def journey(page, name):
    day = Day(page, name)
    try:
        yield day
    except BaseException:
        day.save()
        raise


# What the journeys need to know of the seeded practice (people find it by name on the pages).

def _db(app, query):
    from examples.practice_host.models import db

    with app.app_context():
        try:
            return query(db.session)
        finally:
            db.session.remove()


def _long_call(app):
    from callrec_plugin.models import Recording
    from examples.practice_host.models import Patient
    from examples.practice_host.seed import LONG_CALL_SOURCE_REF

    def query(session):
        recording = session.scalar(sa.select(Recording).where(Recording.source_ref == LONG_CALL_SOURCE_REF))
        patient = session.get(Patient, recording.patient_ref)
        return recording.id, recording.duration_seconds, patient.id, patient.first_name, patient.last_name
    return _db(app, query)


def _patient_for_reception(app, exclude):
    """A patient of p1 with calls, no complaint, no objection and no call in the training library (an
    objection takes a call out of it): the one reception records objecting."""
    from callrec_plugin.models import PatientObjection, Recording
    from examples.practice_host.models import Complaint, Patient

    def query(session):
        busy = set(session.scalars(sa.select(Complaint.patient_id))) | set(
            session.scalars(sa.select(PatientObjection.patient_ref))) | set(exclude) | set(
            session.scalars(sa.select(Recording.patient_ref).where(Recording.approved_for_training.is_(True))))
        rows = session.execute(sa.select(Recording.patient_ref, sa.func.count()).where(
            Recording.practice_ref == "p1", Recording.status == "active", Recording.patient_ref.is_not(None))
            .group_by(Recording.patient_ref).order_by(sa.func.count().desc(), Recording.patient_ref)).all()
        ref = next(ref for ref, _ in rows if ref not in busy)
        patient = session.get(Patient, ref)
        return ref, patient.first_name, patient.last_name
    return _db(app, query)


def _sign_in(day, base, username):
    """Sign in through the sign-in page, which is checked like every other page of the day."""
    day.page.goto(f"{base}/login")
    day.check(f"sign-in as {username}")
    day.page.get_by_label("Username").fill(username)
    day.page.get_by_label("Password").fill("demo")
    day.page.get_by_role("button", name="Sign in").click()
    day.page.wait_for_load_state()
    assert "/login" not in day.page.url, day.page.get_by_role("main").inner_text()
    day.check(f"{username}'s first page")


def _dashboard_link(page, first, last):
    """The patient's link on the host's patient list ("Surname, First name")."""
    return page.get_by_role("link", name=f"{last}, {first}", exact=True)


def _open_call_menu(page, link):
    """A link of callrec's menu: inline for a few links, inside the "Call recordings" menu for many."""
    target = page.get_by_role("navigation", name="Main").get_by_role("link", name=link, exact=True)
    if not target.is_visible():
        page.get_by_role("navigation", name="Main").get_by_text("Call recordings", exact=True).click()
    target.click()
    page.wait_for_load_state()


def _sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()


def _metadata(audio):
    """The audio element's duration once its metadata has loaded (it fails the test on a media error)."""
    return audio.evaluate("""audio => new Promise((resolve, reject) => {
        if (audio.readyState >= 1) return resolve(audio.duration);
        audio.addEventListener('loadedmetadata', () => resolve(audio.duration), {once: true});
        audio.addEventListener('error', () => reject(new Error('media error ' + (audio.error && audio.error.code))));
    })""")


def clock(seconds):
    """What a person reads for a duration: whole seconds truncated, as the browser's player shows it."""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def test_reception_opens_a_patient_sees_why_there_is_no_player_and_records_an_objection(demo, page):
    app, base = demo
    long_call = _long_call(app)
    patient_ref, first, last = _patient_for_reception(app, exclude={long_call[2]})
    note = ["Said on the phone she does not want calls recorded.", "Prefers letters; call ended politely."]
    with journey(page, "reception") as day:
        _sign_in(day, base, "reception")
        _dashboard_link(page, first, last).click()
        day.check("patient")
        panel = page.get_by_role("region", name=re.compile(r"^Calls"))
        expect(panel.get_by_role("heading", name=re.compile(r"^Calls"))).to_be_visible()
        calls = panel.get_by_role("table").locator("tbody tr")
        assert calls.count() >= 1
        first_call = calls.first.get_by_role("link").first
        when = first_call.inner_text()
        first_call.click()
        day.check("call")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Call on")
        assert page.locator("audio").count() == 0
        assert page.get_by_label("Purpose of listening").count() == 0
        why = page.locator("#callrec-no-player")
        expect(why).to_contain_text("You cannot listen to this call.")
        expect(why).to_contain_text("lets only the practice owner and manager")
        assert page.request.get(page.url + "/audio").status == 403

        page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=f"{first} {last}").click()
        page.wait_for_load_state()
        page.get_by_text("Record that this patient objects to recording").click()
        page.get_by_label("How the patient told us").select_option(label="On the phone")
        page.get_by_label("Call during which the patient objected (optional)").select_option(label=when)
        page.get_by_label("Note (optional)").fill("\n".join(note))
        page.get_by_role("button", name="Record the objection").click()
        page.wait_for_load_state()
        expect(page.get_by_role("status").filter(has_text="the patient objected to recording")).to_be_visible()
        banner = page.get_by_role("alert").filter(has_text="This patient does not wish to be recorded.")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("Chloe Pritchard")
        shown = " ".join(banner.inner_text().split())
        assert all(line in shown for line in note), shown
        day.check("patient after the objection")
    from callrec_plugin.models import PatientObjection

    assert _db(app, lambda s: s.scalar(sa.select(sa.func.count()).select_from(PatientObjection).where(
        PatientObjection.patient_ref == patient_ref, PatientObjection.withdrawn_at.is_(None)))) == 1


def test_complaint_handler_finds_attaches_plays_and_detaches_a_call(demo, page):
    app, base = demo
    from callrec_plugin.models import ComplaintLink

    with journey(page, "handler") as day:
        _sign_in(day, base, "handler")
        page.get_by_role("link", name="Complaints", exact=True).click()
        day.check("complaint list")
        complaint = page.get_by_role("table").locator("tbody tr").filter(has_text="Disputed fee for implant crown")
        complaint.get_by_role("link").first.click()  # the host links a complaint by its reference
        day.check("complaint")
        panel = page.get_by_role("region", name=re.compile(r"^Calls attached as evidence"))
        expect(panel.get_by_role("heading", name=re.compile(r"\(2\)$"))).to_be_visible()

        # The call finder: the complainant's calls over the last year.
        today = dt.date.today()
        panel.get_by_label("From", exact=True).fill((today - dt.timedelta(days=365)).isoformat())
        panel.get_by_label("To", exact=True).fill(today.isoformat())
        panel.get_by_role("button", name="Find calls").click()
        day.check("call finder")
        panel = page.get_by_role("region", name=re.compile(r"^Calls attached as evidence"))
        found = panel.get_by_role("table", name=re.compile("Calls that can be attached")).locator("tbody tr")
        assert found.count() >= 1
        when = found.first.get_by_role("link").inner_text()
        found.first.get_by_label(f"Note for the call of {when}").fill("Reception quotes the crown fee on this call.")
        found.first.get_by_role("button", name="Attach").click()
        page.wait_for_load_state()
        expect(page.get_by_role("status").filter(has_text="attached to the complaint")).to_be_visible()
        panel = page.get_by_role("region", name=re.compile(r"^Calls attached as evidence"))
        expect(panel.get_by_role("heading", name=re.compile(r"\(3\)$"))).to_be_visible()
        expect(panel.get_by_text("Reception quotes the crown fee on this call.")).to_be_visible()
        day.check("complaint after attaching")

        # Plays it for the complaint, from the complainant's record.
        page.get_by_role("link", name="David Patel").click()
        day.check("complainant")
        page.get_by_role("region", name=re.compile(r"^Calls")).get_by_role("link", name=when).click()
        day.check("call")
        page.get_by_label("Purpose of listening").select_option("complaint")
        page.get_by_label("Complaint reference (for a complaint investigation)").select_option(
            label="Disputed fee for implant crown")
        page.get_by_role("button", name="Listen").click()
        page.wait_for_load_state()
        player = page.get_by_role("region", name="Listen", exact=True)
        expect(player).to_contain_text("Purpose: Investigating a complaint.")
        assert _metadata(player.locator("audio")) > 1
        day.check("player")

        # Detaches it again, with a reason.
        page.get_by_role("link", name="Disputed fee for implant crown").first.click()
        page.wait_for_load_state()
        item = page.locator("ul.callrec-link-notes li").filter(has_text=when)
        item.get_by_label("Reason for detaching").fill("Attached by mistake: the fee was quoted on another call.")
        item.get_by_role("button", name="Detach").click()
        page.wait_for_load_state()
        expect(page.get_by_role("status").filter(has_text="detached from the complaint")).to_be_visible()
        panel = page.get_by_role("region", name=re.compile(r"^Calls attached as evidence"))
        expect(panel.get_by_role("heading", name=re.compile(r"\(2\)$"))).to_be_visible()
        day.check("complaint after detaching")

    links = _db(app, lambda s: s.execute(sa.select(ComplaintLink.note, ComplaintLink.unlink_reason).where(
        ComplaintLink.complaint_ref == "cmp-001", ComplaintLink.note.like("Reception quotes%"))).all())
    assert links == [("Reception quotes the crown fee on this call.",
                      "Attached by mistake: the fee was quoted on another call.")]


def test_manager_plays_and_seeks_a_long_call_holds_a_patients_calls_and_reads_the_audit(demo, page):
    app, base = demo
    recording_id, seconds, patient_ref, first, last = _long_call(app)
    assert seconds >= 600, "the demo needs a call of at least ten minutes"
    audio_responses = []
    with journey(page, "manager") as day:
        _sign_in(day, base, "manager")
        _dashboard_link(page, first, last).click()
        day.check("patient")
        panel = page.get_by_role("region", name=re.compile(r"^Calls"))
        row = panel.locator("tbody tr").filter(has=page.get_by_role("cell", name=clock(seconds), exact=True))
        row.get_by_role("link").first.click()
        day.check("long call")
        assert page.url.endswith(f"/callrec/recordings/{recording_id}")
        trail = page.get_by_role("navigation", name="Breadcrumb")
        expect(trail.get_by_role("link", name=f"{first} {last}")).to_have_attribute(
            "href", re.compile(rf"/patients/{patient_ref}$"))
        expect(trail.locator("[aria-current=page]")).to_have_text(re.compile(r"^Call on "))

        page.on("response", lambda response: audio_responses.append(response)
                if response.url.endswith(f"/recordings/{recording_id}/audio") else None)
        page.get_by_label("Purpose of listening").select_option(
            label="Management spot check of customer service standards")
        page.get_by_role("button", name="Listen").click()
        page.wait_for_load_state()
        audio = page.locator("audio")
        duration = _metadata(audio)
        assert duration >= 600
        # The page, the panel and the player say the same duration.
        expect(page.locator("dl.callrec-meta")).to_contain_text(clock(duration))
        expect(page.locator(".callrec-timeline-time")).to_have_text(f"0:00 of {clock(duration)}")
        day.check("player")

        # Seek far past what the browser has buffered: the server answers that Range with a 206.
        buffered = audio.evaluate("a => a.buffered.length ? a.buffered.end(a.buffered.length - 1) : 0")
        target = max(duration * 0.8, buffered + 120)
        assert target < duration, f"the browser buffered {buffered:.0f} s of {duration:.0f} s: nothing left to seek to"
        bytes_per_second = 8000  # the demo's audio: 8 kHz, 8-bit, mono
        with page.expect_response(lambda response: response.url.endswith("/audio") and _range_start(
                response.request.headers.get("range")) > buffered * bytes_per_second) as seek:
            reached = audio.evaluate("""(a, t) => new Promise(resolve => {
                a.addEventListener('seeked', () => resolve(a.currentTime), {once: true});
                a.currentTime = t;
            })""", target)
        assert abs(reached - target) < 2
        response = seek.value
        assert response.status == 206, (response.status, response.request.headers.get("range"))
        start = _range_start(response.request.headers["range"])
        assert response.headers["content-range"].startswith(f"bytes {start}-")
        assert all(r.status in (200, 206) for r in audio_responses)
        expect(page.locator(".callrec-timeline-time")).to_have_text(re.compile(rf"^{clock(reached)} of "))

        # A regulator's hold on all of this patient's calls: one request, released by two people.
        _open_call_menu(page, "Holds")
        day.check("holds")
        hold_form = page.locator("form.callrec-hold-form")
        hold_form.get_by_label("Hold", exact=True).select_option(label="All calls of a patient")
        hold_form.get_by_label("Patient (name, date of birth or number)").fill(f"{first} {last}")
        hold_form.get_by_role("button", name="Find the patient and their calls").click()
        page.wait_for_load_state()
        hold_form = page.locator("form.callrec-hold-form")
        expect(hold_form.get_by_text(f"{first} {last}").first).to_be_visible()
        day.check("hold form with the patient")
        hold_form.get_by_label("Hold", exact=True).select_option(label="All calls of a patient")
        hold_form.get_by_label("Kind of hold").select_option(label="Regulator")
        hold_form.get_by_label("Reason", exact=True).fill("The regulator asked for this patient's calls.")
        hold_form.get_by_label("External reference (optional)").fill("GDC-2026-0417")
        hold_form.get_by_role("button", name="Place the hold").click()
        page.wait_for_load_state()
        expect(page.get_by_role("status").filter(has_text=re.compile(r"^Held \d+ calls?\.$"))).to_be_visible()
        day.check("holds with the new hold")
        held = _held_calls(app, patient_ref)
        assert held >= 1
        row = _hold_row(page, first, last)
        expect(row).to_have_count(1)  # one request, however many calls
        expect(row).to_contain_text("by Natalie Ballantyne")
        expect(row.get_by_text(f"{held} call{'s' if held != 1 else ''}", exact=True)).to_be_visible()
        row.get_by_role("button", name=re.compile(r"^Approve release \(1 of 2\)")).click()
        page.wait_for_load_state()
        expect(page.get_by_role("status").filter(has_text="a second, different person must approve")).to_be_visible()
        row = _hold_row(page, first, last)
        expect(row).to_contain_text("First approval: Natalie Ballantyne")
        assert row.get_by_role("button", name=re.compile("Approve release")).count() == 0
        day.check("holds after the first approval")

        _sign_out(page)
        _sign_in(day, base, "owner")
        _open_call_menu(page, "Holds")
        row = _hold_row(page, first, last)
        expect(row).to_have_count(1)
        day.check("holds awaiting the second approval")
        row.get_by_role("button", name=re.compile(r"^Approve release \(2 of 2\)")).click()
        page.wait_for_load_state()
        expect(page.get_by_role("status").filter(has_text="The hold is released")).to_be_visible()
        day.check("holds after the release")
        assert _held_calls(app, patient_ref) == 0
        _sign_out(page)

        _sign_in(day, base, "manager")
        _open_call_menu(page, "Retention")
        expect(page.get_by_role("heading", name="Retention", level=1)).to_be_visible()
        day.check("retention")

        _open_call_menu(page, "Call audit")
        day.check("audit trail")
        page.get_by_label("Person (name)").fill("Elliott")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_load_state()
        rows = page.get_by_role("table").locator("tbody tr")
        expect(rows.first).to_be_visible()
        people = {" ".join(text.split()[:2]) for text in rows.locator("td:nth-child(3)").all_inner_texts()}
        assert people == {"Elliott Ballantyne"}, people
        expect(rows.filter(has=page.get_by_role("cell", name="Hold released", exact=True))).to_have_count(1)
        day.check("audit trail of one person")


def _range_start(header):
    match = re.fullmatch(r"bytes=(\d+)-\d*", header or "")
    return int(match.group(1)) if match else -1


def _held_calls(app, patient_ref):
    from callrec_plugin.models import Hold, Recording

    return _db(app, lambda s: s.scalar(sa.select(sa.func.count()).select_from(Hold).join(
        Recording, Recording.id == Hold.recording_id).where(Recording.patient_ref == patient_ref,
                                                            Hold.kind == "regulator", Hold.released_at.is_(None))))


def _hold_row(page, first, last):
    return page.get_by_role("table").locator("tbody tr").filter(has_text="Regulator").filter(
        has_text=f"{first} {last}").filter(has_text="GDC-2026-0417")


def test_data_protection_lead_registers_a_subject_access_request_and_downloads_the_bundle(demo, page):
    app, base = demo
    _, _, patient_ref, first, last = _long_call(app)
    received = dt.date.today() - dt.timedelta(days=3)
    due = _one_month_after(received)
    with journey(page, "dpo") as day:
        _sign_in(day, base, "dpo")
        _open_call_menu(page, "Subject access register")
        day.check("register")
        page.get_by_label("Patient (their name, or the reference in their record)").fill(f"{first} {last}")
        page.get_by_label("Date the request was received").fill(received.isoformat())
        page.get_by_label("How the requester's identity was verified").fill(
            "Passport and a utility bill seen at reception")
        page.get_by_label("Identity verified by").fill("Chloe Pritchard")
        page.get_by_label("Requester's reference (optional)").fill("SAR-JOURNEY-1")
        page.get_by_role("button", name="Register the request").click()
        page.wait_for_load_state()
        expect(page.get_by_role("status")).to_contain_text(f"the answer is due by {due:%d %B %Y}")
        expect(page.get_by_role("heading", level=1)).to_have_text("Subject access request SAR-JOURNEY-1")
        day.check("request")
        page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Subject access register").click()
        page.wait_for_load_state()
        row = page.get_by_role("table").locator("tbody tr").filter(has_text="SAR-JOURNEY-1")
        expect(row).to_contain_text(f"{due:%d %b %Y}")
        expect(row).to_contain_text(re.compile(r"Open: \d+ days left"))
        day.check("register with the request")

        row.get_by_role("link", name="SAR-JOURNEY-1").click()
        page.wait_for_load_state()
        page.get_by_role("button", name="Build the bundle of the patient's calls").click()
        page.wait_for_load_state()
        day.check("bundle")
        with page.expect_download() as download:
            page.get_by_role("link", name="Download the bundle (ZIP)").click()
        with zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read())) as bundle:
            names = bundle.namelist()
            assert {"manifest.json", "SHA256SUMS"} <= set(names), names
            assert any(name.lower().endswith(".wav") for name in names), names
            assert f"{first} {last}" not in bundle.read("SHA256SUMS").decode()


def _one_month_after(day):
    """The same day a calendar month later, or the last day of a shorter month (UK GDPR Art. 12(3))."""
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def test_trainer_listens_to_a_call_of_the_training_library(demo, page):
    app, base = demo
    with journey(page, "trainer") as day:
        _sign_in(day, base, "trainer")
        _open_call_menu(page, "Training library")
        expect(page.get_by_role("heading", name="Training library", level=1)).to_be_visible()
        day.check("training library")
        rows = page.get_by_role("table").locator("tbody tr")
        assert rows.count() >= 1
        duration_shown = rows.first.locator("td").nth(1).inner_text()
        rows.first.get_by_role("button", name="Listen").click()
        page.wait_for_load_state()
        player = page.get_by_role("table").locator("tbody tr").first.locator("audio")  # plays in its row
        expect(player).to_have_count(1)
        duration = _metadata(player)
        assert clock(duration) == duration_shown  # the library and the player agree to the second
        day.check("player")


@pytest.mark.parametrize("username", ROLES)
def test_the_menu_stays_one_row_at_1280_px(demo, page, username):
    """The header (practice, menu, who is signed in) is one row at 1280 px for every role: the manager's
    thirteen call-recording pages sit in one "Call recordings" menu."""
    app, base = demo
    sign_in(page, base, username)
    page.goto(f"{base}/callrec/holds" if username in ("owner", "manager") else base + "/")
    nav = page.get_by_role("navigation", name="Main")
    first = nav.get_by_role("link", name="Patients", exact=True).bounding_box()
    box = nav.bounding_box()
    assert box["height"] < 1.5 * first["height"], (username, box, first)
    user = page.get_by_role("button", name="Sign out").bounding_box()
    assert user["y"] < box["y"] + box["height"], "the signed-in user's box wrapped below the menu"
    spare = page.locator(".user-box").bounding_box()["x"] - (box["x"] + box["width"])
    assert spare >= 40, f"{spare:.0f} px between the menu and the user's name: a slightly longer label would wrap"
    tops = {round(item["y"]) for item in nav.locator(":scope > ul > li").evaluate_all(
        "items => items.map(item => item.getBoundingClientRect().toJSON())")}
    assert len(tops) == 1, tops
