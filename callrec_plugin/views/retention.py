"""The retention page, and changing one call's retention: extend, lawful erasure, training approval."""
import datetime as dt

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for

from callrec_plugin import audit, clock
from callrec_plugin.erasure import RetentionError, approve_erasure, extend_retention, request_erasure
from callrec_plugin.state import db_session
from callrec_plugin.forms import ConfirmForm, ErasureForm, ExtendRetentionForm, TrainingForm
from callrec_plugin.holds import holds_of
from callrec_plugin.identity import current_actor
from callrec_plugin.models import ErasureRequest, Hold, Recording, RecordingStatus, Tombstone
from callrec_plugin.policy import decide
from callrec_plugin.retention import eligibility, grace_period
from callrec_plugin.roles import Action
from callrec_plugin.scoping import recording_or_404, recordings_in
from callrec_plugin.views import allowed_or_403, blueprint, login_required, refused_409, submitted_or_400

ROUTES = {
    "callrec.retention_page": Action.VIEW_RETENTION,
    "callrec.extend_retention_view": Action.CHANGE_RETENTION,
    "callrec.request_erasure_view": Action.CHANGE_RETENTION,
    "callrec.approve_erasure_view": Action.CHANGE_RETENTION,
    "callrec.training_approval": Action.APPROVE_TRAINING,
}


def _upcoming(actor, now, days):
    """Active recordings whose retention ends within `days`, with their eligibility."""
    recordings = db_session().scalars(
        recordings_in(actor.practice_ref).where(Recording.status == RecordingStatus.ACTIVE,
                                                Recording.retain_until < now + dt.timedelta(days=days))
        .order_by(Recording.retain_until)
    ).all()
    by_recording, grace = holds_of(r.id for r in recordings), grace_period()
    return [(r, eligibility(r, by_recording.get(r.id, []), now, grace)) for r in recordings]


def _purged_by_month(actor):
    rows = db_session().execute(
        sa.select(Tombstone.purged_at).where(Tombstone.practice_ref == actor.practice_ref)
    ).scalars()
    months = {}
    for purged_at in rows:
        key = purged_at.strftime("%Y-%m")
        months[key] = months.get(key, 0) + 1
    return sorted(months.items(), reverse=True)


@blueprint.route("/retention")
@login_required
def retention_page():
    actor = current_actor()
    allowed_or_403(actor, Action.VIEW_RETENTION, object_type="retention", object_id="report")
    db_session().commit()
    now = clock.now()
    upcoming = _upcoming(actor, now, 30)
    due_7 = [(r, e) for r, e in upcoming if e.purge_after and e.purge_after < now + dt.timedelta(days=7)]
    due_30 = [(r, e) for r, e in upcoming if e.purge_after and e.purge_after < now + dt.timedelta(days=30)]
    held_past = [(r, e) for r, e in upcoming if r.retain_until <= now and e.purge_after is None]
    holds_by_kind = dict(db_session().execute(
        sa.select(Hold.kind, sa.func.count()).where(Hold.practice_ref == actor.practice_ref,
                                                   Hold.released_at.is_(None)).group_by(Hold.kind)).all())
    pending_erasures = db_session().scalars(sa.select(ErasureRequest).where(
        ErasureRequest.practice_ref == actor.practice_ref, ErasureRequest.approved_at.is_(None),
        ErasureRequest.withdrawn_at.is_(None))).all()
    return render_template("callrec/retention.html", now=now, due_7=due_7, due_30=due_30, held_past=held_past,
                           holds_by_kind=holds_by_kind, purged=_purged_by_month(actor),
                           erasures=pending_erasures, confirm=ConfirmForm(),
                           may_change=decide(actor, Action.CHANGE_RETENTION).allowed)


def _back(recording):
    return redirect(url_for("callrec.recording_page", recording_id=recording.id) + "#callrec-retention")


@blueprint.route("/recordings/<recording_id>/retention", methods=["POST"])
@login_required
def extend_retention_view(recording_id):
    actor = current_actor()
    form = ExtendRetentionForm(prefix="callrec-extend")
    recording = recording_or_404(actor, recording_id, Action.CHANGE_RETENTION)
    allowed_or_403(actor, Action.CHANGE_RETENTION, recording)
    submitted_or_400(form)
    until = dt.datetime.combine(form.retain_until.data, dt.time(23, 59, 59), dt.timezone.utc)
    try:
        extend_retention(actor, recording, until, form.reason.data)
    except RetentionError as refusal:
        refused_409(actor, Action.CHANGE_RETENTION, refusal, recording=recording)
    db_session().commit()
    flash(f"The call is kept until {until:%d %b %Y}.", "callrec-info")
    return _back(recording)


@blueprint.route("/recordings/<recording_id>/erasure", methods=["POST"])
@login_required
def request_erasure_view(recording_id):
    actor = current_actor()
    form = ErasureForm(prefix="callrec-erasure")
    recording = recording_or_404(actor, recording_id, Action.CHANGE_RETENTION)
    allowed_or_403(actor, Action.CHANGE_RETENTION, recording)
    submitted_or_400(form)
    try:
        request_erasure(actor, recording, form.reason.data)
    except RetentionError as refusal:
        refused_409(actor, Action.CHANGE_RETENTION, refusal, recording=recording)
    db_session().commit()
    flash("Erasure requested: a second, different person must approve it on the retention page.", "callrec-info")
    return _back(recording)


@blueprint.route("/erasure/<int:request_id>/approve", methods=["POST"])
@login_required
def approve_erasure_view(request_id):
    actor = current_actor()
    erasure = db_session().scalar(sa.select(ErasureRequest).where(
        ErasureRequest.id == request_id, ErasureRequest.practice_ref == actor.practice_ref))
    if erasure is None:
        audit.record(Action.CHANGE_RETENTION, "denied", actor=actor, object_type="erasure_request",
                     object_id=str(request_id), reason="no such erasure request in the user's practice")
        db_session().commit()
        abort(404)
    recording = recording_or_404(actor, erasure.recording_id, Action.CHANGE_RETENTION)
    allowed_or_403(actor, Action.CHANGE_RETENTION, recording)
    submitted_or_400(ConfirmForm())
    try:
        approve_erasure(actor, erasure, recording)
    except RetentionError as refusal:
        refused_409(actor, Action.CHANGE_RETENTION, refusal, recording=recording)
    db_session().commit()
    flash("Erasure approved: the call goes at the next purge unless a hold keeps it.", "callrec-info")
    return redirect(url_for("callrec.retention_page"))


@blueprint.route("/recordings/<recording_id>/training", methods=["POST"])
@login_required
def training_approval(recording_id):
    actor = current_actor()
    form = TrainingForm(prefix="callrec-training")
    recording = recording_or_404(actor, recording_id, Action.APPROVE_TRAINING)
    allowed_or_403(actor, Action.APPROVE_TRAINING, recording)
    submitted_or_400(form)
    approve = form.approve.data == "yes"
    recording.approved_for_training = approve
    recording.training_approved_by_ref = actor.ref if approve else None
    audit.record("training_approval", "done", actor=actor, recording=recording,
                 reason="approved for training" if approve else "training approval withdrawn")
    db_session().commit()
    flash("Approved for training." if approve else "No longer approved for training.", "callrec-info")
    return _back(recording)
