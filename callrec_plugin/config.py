"""Every configuration key callrec reads, with its default.

``init_app`` fills missing keys with ``setdefault``; views read ``current_app.config`` per request, so
a host may change a key between requests (tests do).
"""
import copy
import os

DEFAULTS = {
    # URL prefix of callrec's blueprint (pages, audio, ingest API).
    "CALLREC_URL_PREFIX": "/callrec",
    # Days a recording is kept from the start of the call (policy: up to six months).
    "CALLREC_RETENTION_DAYS": 183,
    # Days a recording stays after its last hold is released before it may be purged.
    "CALLREC_HOLD_GRACE_DAYS": 7,
    # Minutes a playback grant (purpose chosen on the recording page) stays valid.
    "CALLREC_GRANT_MINUTES": 30,
    # Directory for encrypted recording blobs; never inside a static folder.
    "CALLREC_STORAGE_DIR": None,
    # Path to the key-encryption key file (lines "key_id:base64key", newest first).
    "CALLREC_KEY_FILE": None,
    # Name of an environment variable holding keys in the same format (";" or newline separated).
    "CALLREC_KEYS_ENV": "CALLREC_KEYS",
    # Path to the Ed25519 private key (PEM) used to sign audit checkpoints.
    "CALLREC_AUDIT_SIGNING_KEY_FILE": None,
    # Redis URL for RQ jobs; None runs jobs in-process (embedded demo default).
    "CALLREC_REDIS_URL": None,
    # RQ queue name for callrec's jobs.
    "CALLREC_QUEUE": "callrec",
    # Largest accepted audio upload or import, in bytes.
    "CALLREC_MAX_AUDIO_BYTES": 200 * 1024 * 1024,
    # Calls shorter than this many seconds are handled as CALLREC_SHORT_CALLS says.
    "CALLREC_MIN_DURATION_SECONDS": 2.0,
    # "drop" skips short calls at ingest; "flag" stores them marked as short.
    "CALLREC_SHORT_CALLS": "flag",
    # Region used to read national numbers (ISO 3166 code).
    "CALLREC_PHONE_REGION": "GB",
    # Recordings purged per transaction by the purge job.
    "CALLREC_PURGE_BATCH_SIZE": 500,
    # UTC time of day ("HH:MM") the scheduler enqueues the daily purge and reconciler.
    "CALLREC_PURGE_AT": "02:30",
    # Hours an orphan blob (no row points at it) must be old before the reconciler deletes it.
    "CALLREC_ORPHAN_GRACE_HOURS": 24,
    # Seconds a job may run before RQ stops it, and how many times a failed job is retried.
    "CALLREC_JOB_TIMEOUT": 3600,
    "CALLREC_JOB_RETRIES": 3,
    # First retry delay of a failed job in seconds; each retry waits four times longer, at most an hour.
    "CALLREC_JOB_RETRY_BASE_SECONDS": 60,
    # Seconds a running job may go without a heartbeat before the scheduler re-queues it.
    "CALLREC_JOB_STALE_SECONDS": 900,
    # Hours an export's download link stays valid.
    "CALLREC_EXPORT_LINK_HOURS": 72,
    # Time zone of the phone system's clock (FreePBX file names and CDR times are local).
    "CALLREC_PBX_TIMEZONE": "Europe/London",
    # Digits dialled for an outside line, taken off numbers in FreePBX file names when that makes them valid.
    "CALLREC_PBX_OUTSIDE_LINE_PREFIX": "9",
    # Practice that `flask callrec import` files recordings under when --practice is not given.
    "CALLREC_DEFAULT_PRACTICE": None,
    # Shared HMAC secrets of the ingest API, {practice_ref: secret}.
    "CALLREC_API_SECRETS": {},
    # Seconds a signed ingest request's timestamp may differ from now.
    "CALLREC_API_MAX_SKEW_SECONDS": 300,
    # Override of the purpose matrix, {role: {purpose: rule}}; None keeps the policy's default.
    "CALLREC_PURPOSE_MATRIX": None,
    # Template callrec's pages extend; a host sets its own layout (blocks "title" and "content").
    "CALLREC_BASE_TEMPLATE": "callrec/base.html",
    # Rows per page of the patient panel.
    "CALLREC_PANEL_PAGE_SIZE": 20,
    # Make a plugin that fails to load fatal instead of logged and skipped.
    "CALLREC_STRICT_PLUGINS": False,
    # Load plugins from the "callrec" entry-point group.
    "CALLREC_LOAD_ENTRY_POINTS": True,
    # Document references shown wherever staff choose a purpose.
    "CALLREC_PRIVACY_NOTICE_REF": "M 217T",
    "CALLREC_IG_PROCEDURES_REF": "M 217C",
}


def apply_defaults(app):
    """Fill every missing CALLREC_* key with its default (values the host set are kept)."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, copy.deepcopy(value))
    if app.config["CALLREC_STORAGE_DIR"] is None:
        app.config["CALLREC_STORAGE_DIR"] = os.path.join(app.instance_path, "callrec-storage")
