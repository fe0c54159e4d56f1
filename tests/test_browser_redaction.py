"""Chromium journey: the manager redacts a range of a call and the player shows it.

The demo host in a thread (port in 18700-18799), Debian's chromium through playwright. The manager
chooses a purpose, marks 0:01 to 0:02.5 as card details and confirms; the page then lists the
redaction, the player's timeline draws the silenced range where it is in the call, the playhead
script says so when playback is inside it, and the audio the browser fetches decodes (Web Audio,
at the file's own sample rate: no resampling) to exact silence inside the range and sound outside.
"""
import os

import pytest
import sqlalchemy as sa

from tests.test_browser import CHROMIUM, browser, running_demo, sign_in  # noqa: F401 (fixture)

if not os.path.exists(CHROMIUM):
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with running_demo(tmp_path_factory.mktemp("redaction-demo"), 12) as (app, base):
        yield app, base


def a_long_wav_call(app):
    from callrec_plugin.models import Recording
    from examples.practice_host.models import db

    with app.app_context():
        return db.session.scalar(
            sa.select(Recording.id).where(Recording.practice_ref == "p1", Recording.audio_format == "wav",
                                          Recording.status == "active", Recording.duration_seconds > 4)
            .order_by(Recording.duration_seconds.desc()).limit(1))


DECODE = """async ([url, start, end]) => {
    const response = await fetch(url, {credentials: 'same-origin'});
    const bytes = await response.arrayBuffer();
    const view = new DataView(bytes);
    const rate = view.getUint32(24, true);  // the WAV's own rate: decoded without resampling
    const audio = await new OfflineAudioContext(1, 1, rate).decodeAudioData(bytes);
    const samples = audio.getChannelData(0);
    let inside = 0, outside = 0;
    for (let i = 0; i < samples.length; i++) {
        const t = i / rate, level = Math.abs(samples[i]);
        if (t >= start && t < end) inside = Math.max(inside, level);
        else if (t < start - 0.2 || t >= end + 0.2) outside = Math.max(outside, level);
    }
    return {status: response.status, rate, duration: audio.duration, inside, outside};
}"""


def test_manager_redacts_a_range_and_the_player_shows_it(demo, browser):
    app, base = demo
    recording_id = a_long_wav_call(app)
    assert recording_id, "the demo has a WAV call longer than 4 s"
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in(page, base, "manager")
        page.goto(f"{base}/callrec/recordings/{recording_id}")
        page.get_by_label("Purpose of listening").select_option("spot_check")
        page.get_by_role("button", name="Listen").click()
        page.wait_for_load_state()
        assert page.locator("svg.callrec-timeline-bar rect.callrec-redacted").count() == 0

        page.get_by_label("From (minutes:seconds, e.g. 1:05.5)").fill("0:01")
        page.get_by_label("To (minutes:seconds)").fill("0:02.5")
        page.get_by_label("Why").select_option("card_details")
        page.get_by_label("I confirm").check()
        page.get_by_role("button", name="Redact this range").click()
        page.wait_for_load_state()

        assert "Redacted 0:01.00 to 0:02.50" in page.locator(".callrec-flash").inner_text()
        listing = page.locator("#callrec-redactions table tbody tr")
        assert listing.count() == 1
        cells = listing.first.locator("td").all_inner_texts()
        assert cells[0] == "0:01.00 to 0:02.50" and cells[1].startswith("Card details") and cells[2]

        # The player's timeline draws the range where it is in the call.
        mark = page.locator("#player svg.callrec-timeline-bar rect.callrec-redacted")
        assert mark.count() == 1
        assert (mark.get_attribute("data-start"), mark.get_attribute("data-end")) == ("1.0", "2.5")
        player = page.locator("#player audio")
        duration = player.evaluate("""audio => new Promise((resolve, reject) => {
            if (audio.readyState >= 1) return resolve(audio.duration);
            audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
            audio.addEventListener('error', () => reject(audio.error && audio.error.code));
            audio.load();
        })""")
        bar = page.locator("#player svg.callrec-timeline-bar").bounding_box()
        box = mark.bounding_box()
        assert abs((box["x"] - bar["x"]) / bar["width"] - 1.0 / duration) < 0.01
        assert abs(box["width"] / bar["width"] - 1.5 / duration) < 0.01

        # Seeking into the range: the playhead moves there and the page says the part is silenced.
        player.evaluate("""audio => new Promise(resolve => {
            audio.addEventListener('seeked', () => resolve(), {once: true});
            audio.currentTime = 1.5;
        })""")
        note = page.locator("#player .callrec-timeline-now")
        note.wait_for(state="visible")
        assert note.inner_text() == "This part of the call has been silenced."
        head_x = float(page.locator("#player .callrec-playhead").get_attribute("x1"))
        assert abs(head_x / 1000 - 1.5 / duration) < 0.01

        # What the browser is served is silence inside the range and sound outside it.
        heard = page.evaluate(DECODE, [f"{base}/callrec/recordings/{recording_id}/audio", 1.0, 2.5])
        assert heard["status"] == 200 and abs(heard["duration"] - duration) < 0.05
        assert heard["inside"] == 0.0 and heard["outside"] > 0.01, heard
    finally:
        context.close()
