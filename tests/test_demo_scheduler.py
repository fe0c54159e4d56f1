"""The demo purges on time by itself: the scheduler thread its server starts deletes the overdue seeded
calls within a minute (here: within seconds, with a short round), and holds keep theirs."""
import datetime as dt
import logging
import time

import sqlalchemy as sa

from callrec_plugin import scheduler_thread
from callrec_plugin.models import Hold, PurgeRun, Recording, Tombstone
from callrec_plugin.retention import eligible_for_purge
from tests.test_demo_host import REPO_ROOT, make_app  # noqa: F401  (puts the checkout on sys.path)
from examples.practice_host.models import db  # noqa: E402
from examples.practice_host.seed import seed_calls, seed_host_data  # noqa: E402


def test_the_demo_servers_scheduler_thread_purges_overdue_seeded_calls(tmp_path, caplog):
    from callrec_plugin.models import metadata as callrec_metadata

    app = make_app(tmp_path, tmp_path / "practice.db")
    with app.app_context():
        db.create_all()
        callrec_metadata.create_all(db.engine)
        seed_host_data(echo=lambda message: None)
        seed_calls(60, echo=lambda message: None)
        session = db.session
        now = dt.datetime.now(dt.timezone.utc)
        due = set(session.scalars(sa.select(Recording.id).where(Recording.retain_until <= now)))
        held = set(session.scalars(sa.select(Hold.recording_id).where(Hold.released_at.is_(None))))
        practices = set(session.scalars(sa.select(Recording.practice_ref).distinct()))
        expected = set()
        for ref in practices:
            expected |= set(session.scalars(eligible_for_purge(now, practice_ref=ref).with_only_columns(Recording.id)))
        assert expected, "the seed must leave calls past their date (seven months of calls, six kept)"
        assert due & held, "and some held past their date"
        session.remove()

    caplog.set_level(logging.INFO, logger="callrec_plugin")
    thread = scheduler_thread.start(app, interval=0.5)
    try:
        assert scheduler_thread.start(app) is thread  # one per app
        deadline = time.monotonic() + 60
        with app.app_context():
            while time.monotonic() < deadline:
                db.session.remove()
                run = db.session.scalars(sa.select(PurgeRun).order_by(PurgeRun.id.desc()).limit(1)).first()
                if run is not None and run.status == "finished":
                    break
                time.sleep(0.2)
            assert run is not None and run.status == "finished", "no purge ran within a minute"
            purged = set(db.session.scalars(sa.select(Recording.id).where(Recording.status == "purged")))
            assert purged == expected
            assert set(db.session.scalars(sa.select(Tombstone.recording_id))) == expected
            still_here = set(db.session.scalars(sa.select(Recording.id).where(Recording.status == "active")))
            assert (due & held) <= still_here  # holds beat expiry
            db.session.remove()
    finally:
        thread.stop()
    assert not thread.is_alive()
    assert "callrec scheduler thread started in this server" in caplog.text  # visible in the server's log
