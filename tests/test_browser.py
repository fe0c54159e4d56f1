"""Journeys in a real browser: Debian's chromium driven by playwright against the demo host.

Skipped with a message where chromium is not installed; CI sets CALLREC_REQUIRE_BROWSER=1 so that
there a missing browser fails instead.
"""
import contextlib
import os
import shutil
import threading

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

if not os.path.exists(CHROMIUM):
    if os.environ.get("CALLREC_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium",
                allow_module_level=True)

if os.environ.get("CALLREC_REQUIRE_BROWSER"):
    from playwright import sync_api  # CI: a missing playwright is a failure, not a skip
else:
    sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser


@contextlib.contextmanager
def running_demo(state, calls, secret_key="browser-test"):
    """(app, base URL) of the demo host with its state in ``state``, seeded with ``calls`` calls, served
    by a thread of this process on a free port of 127.0.0.1; stopped and removed afterwards."""
    from callrec_plugin import migrate
    from examples.practice_host import create_app
    from examples.practice_host.models import db
    from examples.practice_host.seed import seed_calls, seed_host_data

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{state / 'practice.db'}",
        "SECRET_KEY": secret_key,
        "CALLREC_STORAGE_DIR": str(state / "storage"),
        "CALLREC_KEY_FILE": str(state / "keys.txt"),
        "CALLREC_AUDIT_SIGNING_KEY_FILE": str(state / "audit-signing.pem"),
        "CALLREC_LOAD_ENTRY_POINTS": False,
    })
    with app.app_context():
        db.create_all()
        migrate.upgrade(db.engine)
        seed_host_data(echo=lambda message: None)
        seed_calls(calls, echo=lambda message: None)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The demo host, seeded with a few dozen calls, in a thread of this process."""
    with running_demo(tmp_path_factory.mktemp("browser-demo"), 40) as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def sign_in(page, base, username):
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()[:500]


def patient_with_calls(app):
    from callrec_plugin.models import Recording

    with app.app_context():
        from examples.practice_host.models import db

        row = db.session.execute(
            sa.select(Recording.patient_ref, sa.func.count()).where(Recording.practice_ref == "p1",
                                                                    Recording.patient_ref.is_not(None))
            .group_by(Recording.patient_ref).order_by(sa.func.count().desc()).limit(1)
        ).one()
        ids = db.session.scalars(sa.select(Recording.id).where(Recording.patient_ref == row[0])).all()
    return row[0], row[1], set(ids)


def test_reception_sees_the_patients_calls_but_cannot_reach_audio(demo_server, page):
    app, base = demo_server
    patient_ref, count, recording_ids = patient_with_calls(app)
    sign_in(page, base, "reception")
    page.goto(f"{base}/patients/{patient_ref}")
    panel = page.locator("section.callrec-panel")
    assert panel.get_by_role("heading", name="Calls").is_visible()
    links = panel.locator("tbody tr td:first-child a")
    assert links.count() == min(count, app.config["CALLREC_PANEL_PAGE_SIZE"])
    shown = {href.rsplit("/", 1)[1] for href in links.evaluate_all("els => els.map(e => e.getAttribute('href'))")}
    assert shown <= recording_ids
    headers = panel.locator("thead th").all_inner_texts()
    assert headers[:4] == ["Date", "Direction", "Duration", "Handled by"]
    links.first.click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Call on")
    assert page.locator("form select[name=purpose]").count() == 0
    audio = page.request.get(page.url + "/audio")
    assert audio.status == 403


def test_owner_chooses_a_purpose_and_the_audio_plays(demo_server, page):
    app, base = demo_server
    patient_ref, _, recording_ids = patient_with_calls(app)
    sign_in(page, base, "owner")
    recording_id = sorted(recording_ids)[0]
    page.goto(f"{base}/callrec/recordings/{recording_id}")
    page.get_by_label("Purpose of listening").select_option("spot_check")
    page.get_by_role("button", name="Listen").click()
    page.wait_for_load_state()
    player = page.locator("audio")
    assert player.count() == 1
    duration = player.evaluate("""audio => new Promise((resolve, reject) => {
        if (audio.readyState >= 1) return resolve(audio.duration);
        audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
        audio.addEventListener('error', () => reject(audio.error && audio.error.code));
        audio.load();
    })""")
    assert duration > 1
    seeked = player.evaluate("""audio => new Promise(resolve => {
        audio.addEventListener('seeked', () => resolve(audio.currentTime), {once: true});
        audio.currentTime = audio.duration / 2;
    })""")
    assert seeked > 0
