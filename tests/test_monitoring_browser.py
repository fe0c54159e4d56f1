"""The monitoring journey in Chromium against the demo host: the manager works through a spot check with
the rubric, the member of staff reads and answers it and consents to a training request, and the trainer
plays the consented call from the training library."""
import os

import pytest
import sqlalchemy as sa

from tests.test_browser import CHROMIUM, browser, running_demo, sign_in  # noqa: F401 (fixture)

if not os.path.exists(CHROMIUM):  # test_browser skips or fails the same way; keep the reason here too
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo host seeded with a few dozen calls (and its monitoring seed), in a thread of this process."""
    with running_demo(tmp_path_factory.mktemp("monitoring-demo"), 60) as (app, base):
        yield app, base


def new_page(browser):
    return browser.new_context().new_page()


def wait_for_audio(page):
    """The player's duration once the browser has read the audio's metadata (Range requests)."""
    return page.locator("audio").evaluate("""audio => new Promise((resolve, reject) => {
        if (audio.readyState >= 1) return resolve(audio.duration);
        audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
        audio.addEventListener('error', () => reject(audio.error && audio.error.code));
        audio.load();
    })""")


def reception_spot_check(app):
    """An open spot check of reception's (Chloe Pritchard) in the seeded draw: (month, recording id)."""
    from callrec_plugin.models import SpotCheck, SpotCheckDraw
    from examples.practice_host.models import db

    with app.app_context():
        row = db.session.execute(sa.select(SpotCheckDraw.month, SpotCheck.recording_id).join(
            SpotCheck, SpotCheck.draw_id == SpotCheckDraw.id).where(
            SpotCheck.staff_name == "Chloe Pritchard", SpotCheck.assessment_id.is_(None)).limit(1)).first()
    assert row is not None, "the demo seed drew no open spot check of reception's"
    return row


def reception_call_not_in_library(app, exclude):
    from callrec_plugin.models import Recording, TrainingConsent
    from examples.practice_host.models import db

    with app.app_context():
        asked = db.session.scalars(sa.select(TrainingConsent.recording_id)).all()
        return db.session.scalar(sa.select(Recording.id).where(
            Recording.staff_name == "Chloe Pritchard", Recording.status == "active",
            Recording.id.not_in([*asked, exclude])).order_by(Recording.started_at.desc()).limit(1))


def test_spot_check_answer_and_training_library_journey(demo, browser):
    app, base = demo
    month, call = reception_spot_check(app)

    # 1. The manager works through the spot check with the rubric.
    manager = new_page(browser)
    sign_in(manager, base, "manager")
    manager.get_by_text("Call recordings", exact=True).click()  # the demo's menu of callrec's pages
    manager.get_by_role("link", name="Spot checks").click()
    manager.goto(f"{base}/callrec/spot-checks?month={month}")
    heading = manager.get_by_role("heading", name="Spot checks for")
    before = heading.inner_text()
    row = manager.locator("tr", has=manager.locator(f"form[action$='/recordings/{call}/spot-check']"))
    row.get_by_role("button", name="Open for a spot check").click()
    manager.wait_for_load_state()
    assert manager.url.endswith(f"/callrec/recordings/{call}/assess#player")
    assert wait_for_audio(manager) > 1
    for fieldset in manager.locator("fieldset.callrec-criterion").all():
        fieldset.get_by_label("Meets", exact=True).check()
    courtesy = manager.locator("fieldset.callrec-criterion", has_text="Courtesy and empathy")
    courtesy.get_by_label("Partly", exact=True).check()
    courtesy.get_by_label("Note (optional)").fill("Sounded rushed when closing the call")
    manager.get_by_label("Overall note for the member of staff").fill("A good call; slow down at the end.")
    manager.get_by_role("button", name="Record the assessment").click()
    manager.wait_for_load_state()
    done_before, total = (int(n) for n in before.split(": ")[1].split(" done")[0].split(" of "))
    manager.goto(f"{base}/callrec/spot-checks?month={month}")
    assert heading.inner_text().endswith(f"{done_before + 1} of {total} done")

    # The manager also proposes another of reception's calls for the training library.
    library_call = reception_call_not_in_library(app, call)
    manager.goto(f"{base}/callrec/recordings/{library_call}")
    manager.get_by_label("Training note (what the call shows)").fill("Clear booking, good identity check")
    manager.get_by_role("button", name="Propose for training").click()
    manager.wait_for_load_state()
    assert "asked for consent" in manager.content()

    # 2. Reception reads the assessment, acknowledges and answers it, and consents to the request.
    reception = new_page(browser)
    sign_in(reception, base, "reception")
    reception.get_by_role("link", name="My call assessments").click()
    reception.wait_for_load_state()
    article = reception.locator("article.callrec-assessment", has_text="Sounded rushed when closing the call")
    assert article.get_by_role("heading", name="Partly meets the standard").is_visible()
    article.get_by_role("button", name="I have read this assessment").click()
    reception.wait_for_load_state()
    article = reception.locator("article.callrec-assessment", has_text="Sounded rushed when closing the call")
    article.get_by_label("I disagree").check()
    article.get_by_label("Comment (needed if you disagree)").fill("The surgery was about to close; I apologised.")
    article.get_by_role("button", name="Send response").click()
    reception.wait_for_load_state()
    article = reception.locator("article.callrec-assessment", has_text="Sounded rushed when closing the call")
    text = article.inner_text()
    assert "Disagrees — The surgery was about to close" in text
    assert "Read by:" in text and "Natalie Ballantyne" in text and "Chloe Pritchard" in text
    request_row = reception.locator(f"#training-request-{library_call}")
    assert "Clear booking, good identity check" in request_row.inner_text()
    request_row.get_by_role("button", name="I consent").click()
    reception.wait_for_load_state()
    assert "the call is in the training library" in reception.content()

    # 3. The trainer finds it in the library and plays it (purpose: training).
    trainer = new_page(browser)
    sign_in(trainer, base, "trainer")
    trainer.get_by_role("link", name="Training library").click()
    trainer.wait_for_load_state()
    entry = trainer.locator(f"#call-{library_call}")
    assert "Clear booking, good identity check" in entry.inner_text()
    entry.get_by_role("button", name="Listen").click()
    trainer.wait_for_load_state()
    assert wait_for_audio(trainer) > 1
    for page in (manager, reception, trainer):
        page.context.close()
