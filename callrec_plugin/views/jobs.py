"""The jobs page (owner and manager): callrec's queued, running, failed and finished jobs, with retry.

Everything here reads the database only, so the page works while Redis is down. Retrying needs the
queue: with Redis down it answers 503 with Retry-After, and the job stays queued in the database.
"""
import sqlalchemy as sa
from flask import abort, current_app, flash, make_response, redirect, render_template, request, url_for

from callrec_plugin import audit, queueing
from callrec_plugin.ingest import auth_failures
from callrec_plugin.state import db_session
from callrec_plugin.identity import current_actor
from callrec_plugin.models import Job
from callrec_plugin.people import display_name
from callrec_plugin.policy import authorize
from callrec_plugin.roles import Action
from callrec_plugin.security import render_error
from callrec_plugin.forms import CallrecForm
from callrec_plugin.views import FormPage, blueprint, login_required, submitted_or_shown_again

JOBS_ACTION = Action.MANAGE_JOBS  # the practice owner and manager

ROUTES = {"callrec.jobs_page": JOBS_ACTION, "callrec.retry_job": JOBS_ACTION}

PAGE_SIZE = 100
REFRESH_SECONDS = 5
KIND_LABELS = {"purge": "Purge", "reconcile": "Reconciler", "export": "Export"}


class RetryForm(CallrecForm):
    pass


def queue_unavailable(exc, what="This request"):
    """503 with Retry-After: Redis is down, the intent is saved and will be enqueued when it is back."""
    response = make_response(render_error(
        503, "Job queue unavailable",
        f"{what} needs the background job queue, which is not reachable right now. Your request has been "
        "saved and will start automatically when the queue is back: you do not need to send it again. "
        f"Everything else (patient panels, recordings, playback) keeps working. Try this page again in "
        f"{exc.retry_after} seconds."))
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Not possible now", 410: "Link expired"}


def refuse(status, message):
    """An error page in callrec's layout for any status (the blueprint has handlers for a few only)."""
    return render_error(status, TITLES.get(status, "Not possible"), message)


def require_monitoring(actor, action, what, **audit_fields):
    """The policy decides (owner or manager); a refusal is audited once and answered 403."""
    decision = authorize(actor, action, **audit_fields)
    if not decision:
        abort(403, f"Only the practice owner or manager may {what}.")


def visible_jobs(actor):
    """This practice's jobs and the system's own (purge, reconciler), newest first."""
    return sa.select(Job).where(sa.or_(Job.practice_ref == actor.practice_ref, Job.practice_ref.is_(None)))


def refresh_header(response, active):
    if active and request.args.get("refresh") != "off":
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response


@blueprint.route("/jobs")
@login_required
def jobs_page():
    actor = current_actor()
    require_monitoring(actor, JOBS_ACTION, "see callrec's jobs", object_type="jobs", object_id="jobs")
    db_session().commit()
    session = db_session()
    status = request.args.get("status", "")
    query = visible_jobs(actor)
    if status in ("queued", "running", "failed", "finished"):
        query = query.where(Job.status == status)
    rows = session.scalars(query.order_by(Job.created_at.desc()).limit(PAGE_SIZE)).all()
    counts = dict(session.execute(
        sa.select(Job.status, sa.func.count()).where(
            sa.or_(Job.practice_ref == actor.practice_ref, Job.practice_ref.is_(None))).group_by(Job.status)).all())
    active = bool(counts.get("queued") or counts.get("running"))
    html = render_template("callrec/jobs.html", jobs=rows, counts=counts, status=status, form=RetryForm(),
                           kind_labels=KIND_LABELS, refreshing=active and request.args.get("refresh") != "off",
                           refresh_seconds=REFRESH_SECONDS, redis=bool(current_app.config.get("CALLREC_REDIS_URL")),
                           auth_failures=auth_failures.failures(),
                           requested_by=lambda job: display_name(job.practice_ref or actor.practice_ref,
                                                                 job.requested_by_ref))
    return refresh_header(make_response(html), active)


@blueprint.route("/jobs/<job_id>/retry", methods=["POST"])
@login_required
def retry_job(job_id):
    actor = current_actor()
    form = RetryForm()
    submitted_or_shown_again(form, FormPage("Retry the job", "Retry", url_for("callrec.jobs_page"), "the jobs page"))
    job = db_session().scalar(visible_jobs(actor).where(Job.id == job_id))
    if job is None:
        audit.record(JOBS_ACTION, "denied", actor=actor, object_type="job", object_id=job_id[:64],
                     reason="no such job in the user's practice")
        db_session().commit()
        abort(404)
    require_monitoring(actor, JOBS_ACTION, "retry a job", object_type="job", object_id=job.id)
    if job.status != "failed":
        db_session().commit()
        flash("Only a failed job can be retried; this one is " + job.status + ".", "callrec-info")
        return redirect(url_for("callrec.jobs_page"))
    audit.record("job_retry", "done", actor=actor, object_type="job", object_id=job.id,
                 reason=f"{job.kind} job retried by hand after: {(job.error or '')[:300]}")
    db_session().commit()
    try:
        queueing.retry(job.id)
    except queueing.QueueUnavailable as exc:
        return queue_unavailable(exc, "Retrying a job")
    flash(f"The {KIND_LABELS.get(job.kind, job.kind).lower()} job was queued again.", "callrec-info")
    return redirect(url_for("callrec.jobs_page"))
