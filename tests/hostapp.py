"""A minimal host for callrec's tests: users with roles in two practices, patients, complaints.

It implements the extension hooks the way an integrator would, in a plugin module registered by the
app factory, and keeps its own tables on Flask-SQLAlchemy's metadata.
"""
import os

import sqlalchemy as sa
from flask import Flask, abort, render_template_string
from flask_login import LoginManager, UserMixin, login_required
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import Mapped, mapped_column

from callrec_plugin import CallRec
from callrec_plugin.hooks import hookimpl

db = SQLAlchemy()


class User(UserMixin, db.Model):
    __tablename__ = "testhost_users"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[str] = mapped_column(sa.String(32))
    practice: Mapped[str] = mapped_column(sa.String(16))


class Patient(db.Model):
    __tablename__ = "testhost_patients"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    practice: Mapped[str] = mapped_column(sa.String(16))
    phone: Mapped[str] = mapped_column(sa.String(32))


class Complaint(db.Model):
    __tablename__ = "testhost_complaints"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(64))
    practice: Mapped[str] = mapped_column(sa.String(16))
    patient_id: Mapped[str] = mapped_column(sa.String(32))
    handler_id: Mapped[str | None] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(8), default="open")


# username -> (role, practice); every test database gets these users.
USERS = {
    "owner": ("owner", "pA"),
    "manager": ("manager", "pA"),
    "handler": ("complaint_handler", "pA"),
    "handler2": ("complaint_handler", "pA"),
    "trainer": ("trainer", "pA"),
    "reception": ("staff", "pA"),
    "dpo": ("dpo", "pA"),
    "norole": ("", "pA"),
    "ownerB": ("owner", "pB"),
    "receptionB": ("staff", "pB"),
}

PRACTICES = frozenset({"pA", "pB"})
PRACTICE_NAMES = {"pA": "Harbour Dental", "pB": "Hilltop Smiles"}
# (practice, phone extension) -> username: who sits at which phone.
STAFF_EXTENSIONS = {("pA", "201"): "reception", ("pA", "202"): "handler", ("pB", "201"): "receptionB"}


class Integrator:
    """The hooks a PMS implements (no argument defaults: pluggy would never pass them)."""

    @hookimpl
    def callrec_user_roles(self, user):
        return {user.role} if user.role else set()

    @hookimpl
    def callrec_user_ref(self, user):
        return {"ref": user.id, "name": user.name}

    @hookimpl
    def callrec_practice_ref(self, user):
        return user.practice

    @hookimpl
    def callrec_resolve_patient(self, phone_e164, practice_ref, started_at):
        patient = db.session.scalar(
            sa.select(Patient).where(Patient.phone == phone_e164, Patient.practice == practice_ref)
        )
        return patient.id if patient else None

    @hookimpl
    def callrec_practice_exists(self, practice_ref):
        return practice_ref in PRACTICES

    @hookimpl
    def callrec_practice_summary(self, practice_ref):
        name = PRACTICE_NAMES.get(practice_ref)
        return {"ref": practice_ref, "name": name} if name else None

    @hookimpl
    def callrec_staff_for_extension(self, extension, practice_ref, at):
        username = STAFF_EXTENSIONS.get((practice_ref, extension))
        user = db.session.get(User, username) if username else None
        return {"ref": user.id, "name": user.name} if user else None

    @hookimpl
    def callrec_patient_summary(self, patient_ref):
        patient = db.session.get(Patient, patient_ref)
        if patient is None:
            return None
        return {"ref": patient.id, "name": patient.name, "practice_ref": patient.practice,
                "phones": [patient.phone], "url": f"/patients/{patient.id}"}

    @hookimpl
    def callrec_find_patients(self, query, practice_ref):
        pattern = f"%{query.lower()}%"
        patients = db.session.scalars(
            sa.select(Patient).where(Patient.practice == practice_ref,
                                     sa.or_(sa.func.lower(Patient.name).like(pattern), Patient.phone.like(pattern)))
            .order_by(Patient.name).limit(20))
        return [self.callrec_patient_summary(patient.id) for patient in patients]

    @hookimpl
    def callrec_complaint_summary(self, complaint_ref):
        complaint = db.session.get(Complaint, complaint_ref)
        if complaint is None:
            return None
        return {"ref": complaint.id, "title": complaint.title, "practice_ref": complaint.practice,
                "patient_ref": complaint.patient_id, "status": complaint.status,
                "handler_refs": [complaint.handler_id] if complaint.handler_id else [],
                "url": f"/complaints/{complaint.id}"}


PATIENT_PAGE = """<!doctype html><html lang="en"><head><title>{{ patient.name }}</title>{{ callrec_slot("head") }}</head>
<body><main><h1>{{ patient.name }}</h1>
{{ callrec_slot("patient_panel", patient_ref=patient.id) }}
</main></body></html>"""

COMPLAINT_PAGE = """<!doctype html><html lang="en"><head><title>{{ complaint.title }}</title></head>
<body><main><h1>{{ complaint.title }}</h1>
{{ callrec_slot("complaint_panel", complaint_ref=complaint.id, patient_ref=complaint.patient_id) }}
</main></body></html>"""


def _fast_test_sqlite(connection, _record):
    # Tests do not outlive a power cut: no fsync per commit (a killed process loses nothing the OS has).
    connection.execute("PRAGMA synchronous = OFF")


def create_app(config):
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test-secret", TESTING=True, CALLREC_LOAD_ENTRY_POINTS=False)
    config = dict(config)
    csrf_after_callrec = config.pop("TEST_CSRF_AFTER_CALLREC", False)  # the order a careless host might use
    app.config.update(config)
    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            sa.event.listen(db.engine, "connect", _fast_test_sqlite)
    login = LoginManager(app)
    login.user_loader(lambda user_id: db.session.get(User, user_id))
    if not csrf_after_callrec:
        CSRFProtect(app)
    CallRec(app)
    if csrf_after_callrec:
        CSRFProtect(app)
    app.extensions["callrec"].pm.register(Integrator(), name="testhost")

    @app.route("/patients/<patient_ref>")
    @login_required
    def patient_page(patient_ref):
        patient = db.session.get(Patient, patient_ref)
        if patient is None:
            abort(404)
        return render_template_string(PATIENT_PAGE, patient=patient)

    @app.route("/complaints/<complaint_ref>")
    @login_required
    def complaint_page(complaint_ref):
        complaint = db.session.get(Complaint, complaint_ref)
        if complaint is None:
            abort(404)
        return render_template_string(COMPLAINT_PAGE, complaint=complaint)

    return app


def seed_users(session):
    for username, (role, practice) in USERS.items():
        session.add(User(id=username, name=username.capitalize(), role=role, practice=practice))
    session.add_all([
        Patient(id="pat1", name="Ada Patient", practice="pA", phone="+447700900001"),
        Patient(id="pat2", name="Ben Patient", practice="pA", phone="+447700900002"),
        Patient(id="patB", name="Cara Other", practice="pB", phone="+447700900003"),
        Complaint(id="cX", title="Rude call", practice="pA", patient_id="pat1", handler_id="handler"),
        Complaint(id="cY", title="Billing", practice="pA", patient_id="pat2", handler_id="handler2"),
        Complaint(id="cB", title="Other practice", practice="pB", patient_id="patB", handler_id=None),
    ])
    session.commit()


def database_url():
    return os.environ.get("CALLREC_TEST_DATABASE_URL") or "sqlite://"
