"""Exports a person can follow: an honest state, names instead of ids, a way back to the list, and a
JSON status the page's progress bar polls when the bundle is built by an RQ worker."""
import sqlalchemy as sa

from callrec_plugin.models import AuditEvent, Export
from tests.conftest import valid_csrf_token
from tests.subject_access_support import registered


def building(db_session, **fields):
    export = Export(practice_ref="pA", kind="subject_access", patient_ref="pat1", requested_by_ref="staff-3",
                    requested_by_name="Dana Departed", status="building", progress_done=2, progress_total=10,
                    **fields)
    db_session.add(export)
    db_session.commit()
    return export


def test_the_pages_name_the_requester_and_the_patient_not_their_ids(app, db_session, login):
    export = building(db_session)
    for url in (f"/callrec/exports/{export.id}", "/callrec/exports"):
        page = login("dpo").get(url).get_data(as_text=True)
        assert "Dana Departed" in page and "Ada Patient" in page, url
        assert "staff-3" not in page and "pat1" not in page, url
    page = login("dpo").get(f"/callrec/exports/{export.id}").get_data(as_text=True)
    # A way back: the breadcrumb, and a link above and below the bundle's details.
    assert "Being built" in page and page.count('href="/callrec/exports"') == 3
    assert 'aria-label="Breadcrumb"' in page


def test_the_status_endpoint_answers_the_progress_and_is_a_hidden_page_view(app, db_session, login):
    export = building(db_session)
    response = login("dpo").get(f"/callrec/exports/{export.id}/status")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "private, no-store"
    assert response.get_json() == {"status": "building", "label": "Being built", "done": 2, "total": 10}
    event = db_session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert (event.action, event.outcome, event.object_type, event.object_id) == ("export", "allowed",
                                                                                  "export_status", export.id)
    trail = login("owner").get("/callrec/audit").get_data(as_text=True).split("<tbody>")[1]
    assert "Export progress" not in trail  # a page view: shown only when asked for
    assert "Export progress" in login("owner").get("/callrec/audit?page_views=y").get_data(as_text=True)
    assert login("ownerB").get(f"/callrec/exports/{export.id}/status").status_code == 404
    assert login("reception").get(f"/callrec/exports/{export.id}/status").status_code == 403


def test_on_rq_the_page_polls_instead_of_reloading(app, db_session, login):
    export = building(db_session)
    before = app.config.get("CALLREC_REDIS_URL")
    app.config["CALLREC_REDIS_URL"] = "redis://127.0.0.1:6379/10"  # only read here: nothing is enqueued
    try:
        response = login("dpo").get(f"/callrec/exports/{export.id}")
    finally:
        app.config["CALLREC_REDIS_URL"] = before
    page = response.get_data(as_text=True)
    assert "Refresh" not in response.headers
    assert f'data-status-url="/callrec/exports/{export.id}/status"' in page
    assert '<script src="/callrec/static/callrec-export.js" defer></script>' in page
    script = login("dpo").get("/callrec/static/callrec-export.js")
    assert script.status_code == 200 and b"dataset.statusUrl" in script.data


def test_a_bundle_built_at_once_is_called_ready_not_being_prepared(app, db_session, login):
    entry = registered(db_session, "pat1")
    dpo = login("dpo")
    response = dpo.post("/callrec/exports", data={"subject_access_id": entry.id,
                                                   "csrf_token": valid_csrf_token(app, dpo)})
    assert response.status_code == 302
    page = dpo.get(response.headers["Location"]).get_data(as_text=True)
    assert "ready to download" in page and "being prepared" not in page
    assert "<dd id=\"callrec-export-state\">Ready</dd>" in page and "Download the bundle" in page
    export = db_session.scalar(sa.select(Export))
    assert export.requested_by_name == "Dpo"
