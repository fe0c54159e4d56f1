"""Registering subject-access requests in tests: a bundle is built only for a registered request."""
import sqlalchemy as sa

from callrec_plugin.models import SubjectAccessRequest, utcnow
from callrec_plugin.subject_access import due_date
from tests.conftest import valid_csrf_token


def registered(session, patient_ref, by="dpo", practice_ref="pA", received_on=None):
    """A register entry made directly (for tests of what comes after registering)."""
    received_on = received_on or utcnow().date()
    entry = SubjectAccessRequest(practice_ref=practice_ref, patient_ref=patient_ref, received_on=received_on,
                                 identity_method="passport seen at reception", identity_verified_by="Reception",
                                 requester_reference=f"SAR-{patient_ref}", due_on=due_date(received_on),
                                 registered_by_ref=by, registered_by_name=by.capitalize(), registered_at=utcnow())
    session.add(entry)
    session.commit()
    return entry


def register_by_form(client, app, patient_ref, received_on=None, **fields):
    """POST the register form as this client; returns the response."""
    data = {
        "patient_ref": patient_ref,
        "received_on": str(received_on or utcnow().date()),
        "identity_method": "photo ID and a utility bill seen at reception",
        "identity_verified_by": "Rita Reception",
        "requester_reference": f"SAR-{patient_ref}",
        "csrf_token": valid_csrf_token(app, client),
        **fields,
    }
    return client.post("/callrec/subject-access", data=data)


def register_request(client, app, patient_ref, received_on=None):
    """Register a request through the page as this client; returns the entry's id."""
    response = register_by_form(client, app, patient_ref, received_on)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]


def build_bundle(client, app, entry_id):
    """Ask for the bundle of a registered request as this client (the register page's button)."""
    return client.post("/callrec/exports", data={"subject_access_id": entry_id,
                                                  "csrf_token": valid_csrf_token(app, client)})


def latest_entry(session, patient_ref):
    return session.scalar(sa.select(SubjectAccessRequest).where(SubjectAccessRequest.patient_ref == patient_ref)
                          .order_by(SubjectAccessRequest.registered_at.desc()).limit(1))



def bundle_bytes(export):
    """The bundle's ZIP, decrypted from storage."""
    from callrec_plugin.exports import open_bundle

    reader = open_bundle(export)
    try:
        return reader.read()
    finally:
        reader.close()


def bundle_text(export):
    """Every byte of the bundle as text (its entries are stored, not deflated: a search sees them all)."""
    return bundle_bytes(export).decode("latin-1")
