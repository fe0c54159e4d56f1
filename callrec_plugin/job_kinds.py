"""What each kind of callrec job does: the dispatch table from a ``callrec_jobs`` kind to its work.

Kept out of ``jobs.py`` (the runner) so that the work — purge, reconcile, exports — can mark
progress through ``job_records`` without importing the module that imports it: the layers are
work → job_kinds → jobs (runner) → queueing (RQ, scheduler), one way only.
"""
from flask import g

from callrec_plugin import exports, purge
from callrec_plugin.job_records import EXPORT, PURGE, RECONCILE
from callrec_plugin.models import Job
from callrec_plugin.state import db_session


def _purge(job_id):
    report = g._callrec_report = purge.purge(job_id=job_id)  # the CLI prints the report's details
    return report.summary()


def _reconcile(job_id):
    report = g._callrec_report = purge.reconcile(job_id=job_id)
    return report.summary()


def _export(job_id):
    job = db_session().get(Job, job_id)
    return exports.build_export(job.object_id, job_id=job_id)


def _export_failed(job_id, export_id, message, final):
    exports.mark_failed(export_id, message, final=final)


HANDLERS = {PURGE: _purge, RECONCILE: _reconcile, EXPORT: _export}
# Run after a failed attempt is recorded: (job_id, object_id, message, final=will RQ not retry).
FAILURE_HANDLERS = {EXPORT: _export_failed}
