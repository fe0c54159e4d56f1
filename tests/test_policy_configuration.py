"""The policy as a practice changes it: its own purpose matrix in config, and callrec_permission vetoes."""
import pytest
import sqlalchemy as sa

from callrec_plugin.hooks import hookimpl
from callrec_plugin.models import AuditEvent
from tests.conftest import csrf_from
from tests.factories import add_recording

PRACTICE_MATRIX = {
    "owner": {"compliance": "allow"},
    "trainer": {"training": "approved_for_training", "spot_check": "allow"},
}


def choose(client, recording_id, purpose):
    page = client.get(f"/callrec/recordings/{recording_id}")
    return client.post(f"/callrec/recordings/{recording_id}/grants", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "action": "play", "purpose": purpose})


def last_reason(db_session):
    db_session.expire_all()
    return db_session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).one().reason


class TestAPracticesOwnMatrix:
    @pytest.fixture
    def app_config(self, app_config):
        return dict(app_config, CALLREC_PURPOSE_MATRIX=PRACTICE_MATRIX)

    def test_the_configured_matrix_replaces_the_default(self, app, db_session, login):
        call = add_recording(db_session, approved_for_training=True).id
        assert choose(login("trainer"), call, "spot_check").status_code == 302  # granted by this practice
        assert choose(login("owner"), call, "compliance").status_code == 302
        assert choose(login("owner"), call, "training").status_code == 403  # not in this practice's matrix
        assert "may retrieve recordings for purpose training" in last_reason(db_session)
        assert choose(login("manager"), call, "compliance").status_code == 403  # the manager has no row


class Veto:
    """A host rule: nobody listens to calls of practice pA for spot checks this month."""

    @hookimpl
    def callrec_permission(self, user, action, recording, purpose):
        if purpose == "spot_check":
            return False
        return None


def test_a_permission_plugin_vetoes_what_the_matrix_allows(app, db_session, login):
    call = add_recording(db_session).id
    pm = app.extensions["callrec"].pm
    pm.register(Veto(), name="spot-check-veto")
    try:
        assert choose(login("owner"), call, "spot_check").status_code == 403
        assert last_reason(db_session) == "refused by a callrec_permission plugin"
        assert choose(login("owner"), call, "compliance").status_code == 302  # None leaves it to the matrix
    finally:
        pm.unregister(name="spot-check-veto")
    assert choose(login("owner"), call, "spot_check").status_code == 302


def test_the_purpose_form_names_the_privacy_notice_and_ig_procedures(app, db_session, login):
    call = add_recording(db_session).id
    page = login("manager").get(f"/callrec/recordings/{call}").get_data(as_text=True)
    assert "M 217T" in page and "M 217C" in page
    assert "M 217T" not in login("reception").get(f"/callrec/recordings/{call}").get_data(as_text=True)
