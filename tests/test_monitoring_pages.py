"""The monitoring pages are labelled and structured like every callrec page, for each person who uses
them, and the menu gives each role the links it needs (and no more)."""
import datetime as dt

import sqlalchemy as sa

from callrec_plugin import spot_checks
from callrec_plugin.models import AssessmentScore, TrainingConsent
from callrec_plugin.rubric import DEFAULT_CRITERIA
from tests.conftest import valid_csrf_token
from tests.factories import add_recording
from tests.test_accessibility import PageCheck

OCTOBER = dt.datetime(2026, 10, 5, 10, tzinfo=dt.timezone.utc)


def world(app, db_session, login):
    calls = [add_recording(db_session, started_at=OCTOBER + dt.timedelta(hours=n), staff_user_ref="reception",
                           patient_ref="pat2").id for n in range(4)]
    with app.test_request_context():
        spot_checks.draw("pA", "2026-10")
        db_session.commit()
    manager = login("manager")
    token = valid_csrf_token(app, manager)
    scores = {f"callrec-assess-score-{key}": "meets" for key, _ in DEFAULT_CRITERIA}
    manager.post(f"/callrec/recordings/{calls[0]}/assessments", data={**scores, "callrec-assess-csrf_token": token})
    manager.post(f"/callrec/recordings/{calls[1]}/training",
                 data={"callrec-training-approve": "yes", "callrec-training-csrf_token": token})
    db_session.add(TrainingConsent(recording_id=calls[2], practice_ref="pA", staff_user_ref="reception",
                                   status="consented", training_note="good call"))
    from callrec_plugin.models import Recording
    db_session.get(Recording, calls[2]).approved_for_training = True
    db_session.commit()
    return calls


def check_page(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    check = PageCheck()
    check.feed(response.get_data(as_text=True))
    assert check.unlabelled() == [], f"{url}: controls without a label"
    assert not check.duplicate_ids, f"{url}: duplicate ids {check.duplicate_ids}"
    assert check.dangling_references() == [], f"{url}: aria references to no element"
    assert check.tables == check.captions, f"{url}: a table without a caption"
    assert check.tables == 0 or check.header_cells > 0, url
    assert check.h1 == 1, f"{url}: {check.h1} h1 headings"


def test_monitoring_pages_are_labelled_and_structured(app, db_session, login):
    calls = world(app, db_session, login)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AssessmentScore)) == len(DEFAULT_CRITERIA)
    for user, urls in {
        "manager": ["/callrec/spot-checks", "/callrec/rubric", "/callrec/monitoring-summary", "/callrec/assessments",
                    f"/callrec/recordings/{calls[3]}/assess", "/callrec/training", f"/callrec/recordings/{calls[1]}"],
        "reception": ["/callrec/assessments"],
        "trainer": ["/callrec/training"],
    }.items():
        client = login(user)
        for url in urls:
            check_page(client, url)


def menu(app, login, user):
    client = login(user)
    with app.test_request_context():
        from flask_login import login_user

        from tests import hostapp
        login_user(hostapp.db.session.get(hostapp.User, user))
        from callrec_plugin.slots import callrec_menu_links
        return {link["label"] for link in callrec_menu_links()}


def test_menu_links_for_each_role(app, db_session, login):
    monitoring = {"Call assessments", "Spot checks", "Monitoring summary", "Training library"}
    assert monitoring <= menu(app, login, "manager") and monitoring <= menu(app, login, "owner")
    assert {"My call assessments", "Training library"} <= menu(app, login, "trainer")
    reception = menu(app, login, "reception")
    assert "My call assessments" in reception
    assert not reception & {"Spot checks", "Monitoring summary", "Training library", "Call assessments"}
    assert not menu(app, login, "dpo") & {"Spot checks", "Monitoring summary", "Training library"}
