"""The demo PMS's pages: sign-in, patients, complaints. Everything is scoped to the user's practice."""
import datetime as dt
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf.csrf import CSRFError
from werkzeug.security import check_password_hash, generate_password_hash

from . import login_sessions
from .forms import CloseComplaintForm, LoginForm, LogoutForm
from .models import Complaint, Patient, Staff, db, utcnow

# Checked when the username is unknown, so a wrong username costs the same time as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-password")


def _safe_next(target):
    """Only a local path is followed after sign-in (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def login():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        username = form.username.data.strip().lower()
        staff = db.session.scalar(sa.select(Staff).where(Staff.username == username))
        password_ok = check_password_hash(staff.password_hash if staff else _DUMMY_HASH, form.password.data)
        if staff is not None and password_ok and staff.is_active:
            login_sessions.start(staff)  # a fresh, server-side session (no state carried over)
            flash(f"Signed in as {staff.full_name}.", "info")
            return redirect(_safe_next(request.args.get("next")) or url_for("dashboard"))
        error = "The username or password is not right. Check them and try again."
    elif request.method == "POST" and form.errors:
        error = " ".join(message for messages in form.errors.values() for message in messages)
    return _login_page(form, error)


def _login_page(form, error=None, status=200):
    from .seed import DEMO_PASSWORD, demo_logins

    return render_template("login.html", form=form, error=error, demo_logins=demo_logins(),
                           demo_password=DEMO_PASSWORD), status


@login_required
def logout():
    form = LogoutForm()
    if not form.validate_on_submit():
        abort(400)
    login_sessions.end()  # revoked on the server: a copy of the old cookie no longer signs anyone in
    flash("You have signed out.", "info")
    return redirect(url_for("login"))


@login_required
def dashboard():
    q = (request.args.get("q") or "").strip()[:80]
    query = sa.select(Patient).where(Patient.practice_id == current_user.practice_id)
    if q:
        pattern = f"%{q}%"
        query = query.where(sa.or_(
            Patient.first_name.ilike(pattern),
            Patient.last_name.ilike(pattern),
            (Patient.first_name + " " + Patient.last_name).ilike(pattern),
            Patient.id.ilike(pattern),
        ))
    patients = db.session.scalars(
        query.options(sa.orm.selectinload(Patient.phones)).order_by(Patient.last_name, Patient.first_name)
    ).all()
    open_counts = dict(db.session.execute(
        sa.select(Complaint.patient_id, sa.func.count())
        .where(Complaint.practice_id == current_user.practice_id, Complaint.status == "open")
        .group_by(Complaint.patient_id)
    ).all())
    total = db.session.scalar(
        sa.select(sa.func.count()).select_from(Patient).where(Patient.practice_id == current_user.practice_id)
    )
    return render_template("dashboard.html", patients=patients, q=q, total=total, open_counts=open_counts,
                           today=dt.date.today())


def _patient_or_404(patient_ref):
    patient = db.session.scalar(
        sa.select(Patient).where(Patient.id == patient_ref, Patient.practice_id == current_user.practice_id)
    )
    if patient is None:  # missing and another practice's patient look the same
        abort(404)
    return patient


def _complaint_or_404(complaint_ref):
    complaint = db.session.scalar(
        sa.select(Complaint).where(Complaint.id == complaint_ref, Complaint.practice_id == current_user.practice_id)
    )
    if complaint is None:
        abort(404)
    return complaint


@login_required
def patient_page(patient_ref):
    patient = _patient_or_404(patient_ref)
    complaints = db.session.scalars(
        sa.select(Complaint).where(Complaint.patient_id == patient.id, Complaint.practice_id == patient.practice_id)
        .order_by(Complaint.opened_at.desc())
    ).all()
    return render_template("patient.html", patient=patient, complaints=complaints, today=dt.date.today())


@login_required
def complaints_list():
    status = request.args.get("status", "")
    query = sa.select(Complaint).where(Complaint.practice_id == current_user.practice_id)
    if status in ("open", "closed"):
        query = query.where(Complaint.status == status)
    complaints = db.session.scalars(
        query.options(sa.orm.joinedload(Complaint.patient), sa.orm.joinedload(Complaint.handler))
        .order_by(Complaint.status.desc(), Complaint.opened_at.desc())
    ).all()
    return render_template("complaints.html", complaints=complaints, status=status)


@login_required
def complaint_page(complaint_ref):
    complaint = _complaint_or_404(complaint_ref)
    form = CloseComplaintForm() if current_user.may_close(complaint) else None
    return render_template("complaint.html", complaint=complaint, close_form=form)


@login_required
def close_complaint(complaint_ref):
    complaint = _complaint_or_404(complaint_ref)
    form = CloseComplaintForm()
    if not form.validate_on_submit():
        abort(400)
    if not current_user.may_close(complaint):
        abort(403)
    complaint.status = "closed"
    complaint.closed_at = utcnow()
    complaint.closed_by_id = current_user.id
    db.session.commit()
    # Tell callrec: the calls held as evidence for this complaint start their grace period.
    current_app.extensions["callrec"].extension.complaint_closed(complaint.id)
    flash(f"Complaint {complaint.id} closed. Calls held as its evidence will be kept for the grace period, "
          "then deleted when their six months are over.", "info")
    return redirect(url_for("complaint_page", complaint_ref=complaint.id))


def not_found(error):
    return render_template("error.html", title="Not found",
                           message="There is no such page or record in your practice."), 404


def forbidden(error):
    return render_template("error.html", title="Not allowed",
                           message="You may not do this with your role."), 403


def csrf_error(error):
    if request.endpoint == "login":
        return _login_page(LoginForm(formdata=None), "The sign-in form had expired. Please try again.", 400)
    return bad_request(error)


def too_many_sign_ins(error):
    """Flask-Limiter's 429 on the sign-in form (throttling.py), as the sign-in page with its reason."""
    response = _login_page(LoginForm(formdata=None), "Too many sign-in attempts that failed. For your "
                           "security, wait 15 minutes and try again, or ask the practice manager.", 429)
    return response


def bad_request(error):
    return render_template("error.html", title="Bad request",
                           message="The request was not valid. If you were submitting a form, reload the page "
                                   "and try again."), 400


def register_views(app):
    app.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    app.add_url_rule("/logout", "logout", logout, methods=["POST"])
    app.add_url_rule("/", "dashboard", dashboard)
    app.add_url_rule("/patients/<patient_ref>", "patient_page", patient_page)
    app.add_url_rule("/complaints", "complaints_list", complaints_list)
    app.add_url_rule("/complaints/<complaint_ref>", "complaint_page", complaint_page)
    app.add_url_rule("/complaints/<complaint_ref>/close", "close_complaint", close_complaint, methods=["POST"])
    app.register_error_handler(404, not_found)
    app.register_error_handler(403, forbidden)
    app.register_error_handler(400, bad_request)
    app.register_error_handler(CSRFError, csrf_error)
    app.register_error_handler(429, too_many_sign_ins)
