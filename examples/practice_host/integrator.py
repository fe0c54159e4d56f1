"""The integrator module: what the demo PMS tells callrec through callrec's extension hooks.

Registered in ``create_app`` with ``app.extensions["callrec"].pm.register(integrator, name="practice_host")``.
Hook implementations take exactly the hookspecs' argument names and never give them defaults
(pluggy would then never pass them).
"""
import datetime as dt
import re

import sqlalchemy as sa
from flask import current_app, has_request_context, url_for

from callrec_plugin.hooks import hookimpl

from .models import Complaint, Patient, PatientPhone, Practice, Staff, db


def _staff(user):
    return user if isinstance(user, Staff) else None


def _url(endpoint, **values):
    """A URL path for a host page, also outside a request (the seed runs ingest from the CLI)."""
    if has_request_context():
        return url_for(endpoint, **values)
    root = current_app.config.get("APPLICATION_ROOT") or "/"
    adapter = current_app.url_map.bind("localhost", script_name=root)
    return adapter.build(endpoint, values)


@hookimpl
def callrec_user_roles(user):
    staff = _staff(user)
    if staff is None:
        return None
    return {staff.role}


@hookimpl
def callrec_user_ref(user):
    staff = _staff(user)
    if staff is None:
        return None
    return {"ref": staff.ref, "name": staff.full_name}


@hookimpl
def callrec_practice_ref(user):
    staff = _staff(user)
    if staff is None:
        return None
    return staff.practice_id


# Built once: callrec asks this for every call stored and for every should-record question the phone
# system sends before it records, so composing the statement each time would cost more than running it.
# Core columns, not ORM entities: the answer is a list of ids, and no ORM object is needed to give it.
_PHONES, _PATIENTS = PatientPhone.__table__.c, Patient.__table__.c
_PATIENTS_WITH_NUMBER = (
    db.select(_PATIENTS.id)
    .join_from(Patient.__table__, PatientPhone.__table__, _PHONES.patient_id == _PATIENTS.id)
    .where(_PHONES.e164 == db.bindparam("number"), _PATIENTS.practice_id == db.bindparam("practice"))
    .distinct()
    .limit(2)
)


@hookimpl
def callrec_resolve_patient(phone_e164, practice_ref, started_at):
    """The patient of this practice with this number; None if none, or if several share it (a family
    landline): a call is never attributed to a guessed patient."""
    if not phone_e164 or practice_ref is None:
        return None
    refs = db.session.connection().execute(
        _PATIENTS_WITH_NUMBER, {"number": phone_e164, "practice": str(practice_ref)}).scalars().all()
    return refs[0] if len(refs) == 1 else None


@hookimpl
def callrec_patient_summary(patient_ref):
    patient = db.session.get(Patient, str(patient_ref)) if patient_ref else None
    if patient is None:
        return None
    return {
        "ref": patient.id,
        "name": patient.name,
        "practice_ref": patient.practice_id,
        "phones": [phone.e164 for phone in patient.phones],
        "url": _url("patient_page", patient_ref=patient.id),
    }


@hookimpl
def callrec_find_patients(query, practice_ref):
    """Patients of the practice by name ("margaret hughes", "hughes"), date of birth (1961-04-12 or
    12/04/1961) or number (any form; its last digits are enough)."""
    conditions = _patient_search_conditions(query)
    if practice_ref is None or not conditions:
        return []
    patients = db.session.scalars(
        db.select(Patient).outerjoin(PatientPhone, PatientPhone.patient_id == Patient.id)
        .where(Patient.practice_id == str(practice_ref), sa.or_(*conditions))
        .distinct().order_by(Patient.last_name, Patient.first_name).limit(20)
    ).all()
    return [dict(callrec_patient_summary(patient.id), date_of_birth=patient.date_of_birth.strftime("%d %b %Y"))
            for patient in patients]


def _patient_search_conditions(query):
    query = " ".join((query or "").split())
    if not query:
        return []
    conditions = []
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y"):
        try:
            conditions.append(Patient.date_of_birth == dt.datetime.strptime(query, pattern).date())
        except ValueError:
            pass
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 4:
        # 07700 900123 and 0044 7700 900123 are stored +447700900123: their trunk and IDD zeros are not.
        conditions.append(PatientPhone.e164.like(f"%{digits.lstrip('0')}"))
    words = [word for word in re.split(r"[\s,]+", query.lower()) if word and not word.isdigit()]
    if words:
        full_name = sa.func.lower(Patient.first_name + " " + Patient.last_name)
        conditions.append(sa.and_(*[full_name.like(f"%{word}%") for word in words]))
    return conditions


@hookimpl
def callrec_complaint_summary(complaint_ref):
    complaint = db.session.get(Complaint, str(complaint_ref)) if complaint_ref else None
    if complaint is None:
        return None
    return {
        "ref": complaint.id,
        "title": complaint.title,
        "practice_ref": complaint.practice_id,
        "patient_ref": complaint.patient_id,
        "status": complaint.status,
        "handler_refs": [f"staff-{complaint.handler_id}"] if complaint.handler_id is not None else [],
        "url": _url("complaint_page", complaint_ref=complaint.id),
    }


@hookimpl
def callrec_practice_exists(practice_ref):
    return db.session.get(Practice, str(practice_ref)) is not None if practice_ref else False


@hookimpl
def callrec_practice_summary(practice_ref):
    practice = db.session.get(Practice, str(practice_ref)) if practice_ref else None
    return {"ref": practice.id, "name": practice.name} if practice is not None else None


@hookimpl
def callrec_staff_for_extension(extension, practice_ref, at):
    """Who sits at that phone: the active member of staff of the practice with this extension (the demo
    keeps no history of desk moves, so ``at`` is not needed)."""
    staff = db.session.scalar(db.select(Staff).where(Staff.extension == str(extension),
                                                     Staff.practice_id == str(practice_ref), Staff.active.is_(True)))
    return {"ref": staff.ref, "name": staff.full_name} if staff is not None else None


@hookimpl
def callrec_menu_links(user):
    # The host's own navigation already links patients and complaints; callrec adds its own pages.
    return None
