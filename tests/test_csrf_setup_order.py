"""A host that sets up CSRFProtect after CallRec: the signed ingest API is still exempt, nothing else is."""
import pytest
import sqlalchemy as sa

from callrec_plugin.models import Recording
from tests.audio_samples import wav_bytes
from tests.factories import add_recording
from tests.test_ingest_http import METADATA, SECRET, multipart, post


@pytest.fixture
def app_config(app_config):
    return dict(app_config, CALLREC_API_SECRETS={"pA": SECRET}, TEST_CSRF_AFTER_CALLREC=True)


def test_signed_api_is_exempt_whatever_the_order(app, db_session):
    assert app.extensions["csrf"] is not None
    body, content_type = multipart(wav_bytes(3.0), METADATA)
    response = post(app.test_client(), body, content_type)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Recording)) == 1


def test_every_other_post_still_needs_the_token(app, db_session, login):
    call = add_recording(db_session)
    response = login("owner").post(f"/callrec/recordings/{call.id}/grants",
                                   data={"purpose": "compliance", "action": "play"})
    # Refused by CSRFProtect before the view: the page says the form expired and nothing was done.
    assert response.status_code == 400 and b"The form had expired" in response.data
    assert b"nothing was done" in response.data
