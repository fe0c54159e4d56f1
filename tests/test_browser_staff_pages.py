"""In Chromium: on RQ, the export page's progress bar moves as calls are added, without reloading the
page, and the page reloads once when the bundle is done; the place-hold form shows only the fields of
the chosen scope and finds a patient's calls by name (axe-core checks the pages too)."""
import os

import pytest
import sqlalchemy as sa

from tests.test_browser import browser, page, pytestmark, running_demo, sign_in  # noqa: F401 (fixtures)



@pytest.fixture(scope="module")
def rq_demo(tmp_path_factory):
    """The demo host configured as if bundles were built by RQ workers (none runs: the test moves the
    bundle's progress itself, as a worker would)."""
    with running_demo(tmp_path_factory.mktemp("export-browser"), 4) as (app, base):
        app.config["CALLREC_REDIS_URL"] = "redis://127.0.0.1:6379/15"  # read by the export page only
        yield app, base


def _export(app, **changes):
    from callrec_plugin.models import Export, Recording
    from examples.practice_host.models import db

    with app.app_context():
        export = db.session.scalar(sa.select(Export))
        if export is None:
            patient = db.session.scalar(sa.select(Recording.patient_ref).where(Recording.practice_ref == "p1",
                                                                               Recording.patient_ref.is_not(None)))
            export = Export(practice_ref="p1", kind="subject_access", patient_ref=patient, requested_by_ref="gone-7",
                            requested_by_name="Dana Departed", status="building", progress_done=1, progress_total=5)
            db.session.add(export)
        for name, value in changes.items():
            setattr(export, name, value)
        db.session.commit()
        return export.id


def test_the_progress_bar_moves_without_a_reload_then_the_page_offers_the_bundle(rq_demo, page):  # noqa: F811
    app, base = rq_demo
    export_id = _export(app)
    sign_in(page, base, "dpo")
    page.goto(f"{base}/callrec/exports/{export_id}")
    bar = page.locator("#callrec-export-progress")
    assert bar.evaluate("el => el.value") == 1 and page.get_by_text("Requested by").is_visible()
    assert "Dana Departed" in page.content() and "gone-7" not in page.inner_text("main")
    page.evaluate("window.callrecSamePage = true")  # gone if the page reloads

    _export(app, progress_done=4)
    assert _within(page, 15, "() => document.getElementById('callrec-export-progress').value === 4")
    assert page.evaluate("window.callrecSamePage === true"), "the bar must move without reloading the page"
    assert page.locator("#callrec-export-progress-text").inner_text() == "4 of 5 calls added"

    _axe_clean(page)

    _export(app, status="failed", error="the worker stopped")
    # reloaded once, when done
    assert _within(page, 15, "() => window.callrecSamePage === undefined && !!document.querySelector('main')")
    assert "The bundle could not be built: the worker stopped" in page.inner_text("main")


def _within(page, seconds, function):
    """Poll a condition in the page (wait_for_function evaluates a string, which the CSP forbids)."""
    for _ in range(seconds * 4):
        try:
            if page.evaluate(function):
                return True
        except Exception:  # noqa: BLE001 -- the page is navigating: ask again
            pass
        page.wait_for_timeout(250)
    return False


def _has_axe():
    try:
        import axe_playwright_python  # noqa: F401
    except ImportError:
        return False
    return True


def _axe_clean(page):
    if not (os.environ.get("CALLREC_REQUIRE_BROWSER") or _has_axe()):
        return
    from axe_playwright_python.sync_playwright import Axe

    from tests.test_axe import WCAG_21_AA

    assert Axe().run(page, options=WCAG_21_AA).response["violations"] == []


def test_the_hold_form_shows_the_chosen_scope_and_finds_calls_by_name(rq_demo, page):  # noqa: F811
    from callrec_plugin.models import Recording
    from examples.practice_host.models import Patient, db

    app, base = rq_demo
    with app.app_context():
        patient_ref = db.session.scalar(sa.select(Recording.patient_ref).where(Recording.practice_ref == "p1",
                                                                               Recording.patient_ref.is_not(None)))
        from examples.practice_host.integrator import callrec_patient_summary

        patient = db.session.get(Patient, patient_ref)
        typed, name = f"{patient.first_name} {patient.last_name}", callrec_patient_summary(patient_ref)["name"]
    sign_in(page, base, "manager")
    page.goto(f"{base}/callrec/holds")
    parts = {scope: page.locator(f"fieldset[data-callrec-scope='{scope}']")
             for scope in ("recording patient", "recording", "range")}
    assert [parts[s].is_visible() for s in parts] == [True, True, False]
    page.select_option("#callrec-hold-scope", "range")
    assert [parts[s].is_visible() for s in parts] == [False, False, True]
    page.select_option("#callrec-hold-scope", "patient")
    assert [parts[s].is_visible() for s in parts] == [True, False, False]
    _axe_clean(page)
    page.select_option("#callrec-hold-scope", "recording")
    page.fill("#callrec-hold-patient_name", typed)
    page.get_by_role("button", name="Find the patient and their calls").click()
    page.wait_for_load_state()
    assert page.get_by_text(f"Calls of {name}").is_visible()
    assert page.locator("input[name='callrec-hold-recording_id']").count() >= 1
    _axe_clean(page)
