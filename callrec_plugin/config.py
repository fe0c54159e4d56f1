"""Every configuration key callrec reads, with its default.

``init_app`` fills missing keys with ``setdefault``; views read ``current_app.config`` per request, so
a host may change a key between requests (tests do).
"""
import copy
import json
import os

DEFAULTS = {
    # URL prefix of callrec's blueprint (pages, audio, ingest API).
    "CALLREC_URL_PREFIX": "/callrec",
    # Calendar months a recording is kept from the start of the call (policy: up to six months);
    # a practice may have its own (hook callrec_practice_settings).
    "CALLREC_RETENTION_MONTHS": 6,
    # Days a recording stays after its last hold is released before it may be purged (per practice too).
    "CALLREC_HOLD_GRACE_DAYS": 7,
    # Months past its retention one person may keep a call (with a reason); beyond that only a hold keeps it.
    "CALLREC_EXTENSION_CAP_MONTHS": 6,
    # Years a purged call's tombstone (the practice's accountability record) is kept, then deleted.
    "CALLREC_TOMBSTONE_YEARS": 6,
    # Time zone whose calendar decides a call's day (a call at 23:30 UTC on 31 August is 1 September in London).
    "CALLREC_PRACTICE_TIMEZONE": "Europe/London",
    # Minutes a playback grant (purpose chosen on the recording page) stays valid.
    "CALLREC_GRANT_MINUTES": 30,
    # Directory for encrypted recording blobs; never inside a static folder.
    "CALLREC_STORAGE_DIR": None,
    # Where blobs live: "folder" (CALLREC_STORAGE_DIR) or "s3" (S3-compatible object storage: CALLREC_S3_BUCKET and below).
    "CALLREC_STORAGE_BACKEND": "folder",
    # Bucket of the "s3" backend (created beforehand; callrec never creates or configures buckets).
    "CALLREC_S3_BUCKET": None,
    # Key prefix inside the bucket, so one bucket can hold several installations.
    "CALLREC_S3_PREFIX": "callrec/",
    # Endpoint of a non-AWS service (MinIO, Ceph RGW), e.g. "https://minio.internal:9000"; None means AWS.
    "CALLREC_S3_ENDPOINT_URL": None,
    # Region of the bucket; None takes boto3's (AWS_DEFAULT_REGION).
    "CALLREC_S3_REGION": None,
    # Access key pair; None uses boto3's chain (AWS_* environment variables, credentials file, instance role).
    "CALLREC_S3_ACCESS_KEY_ID": None,
    "CALLREC_S3_SECRET_ACCESS_KEY": None,
    # "path" for MinIO and Ceph RGW without wildcard DNS, "virtual" or "auto" (boto3 decides) otherwise.
    "CALLREC_S3_ADDRESSING_STYLE": "auto",
    # Bytes per multipart-upload part (at least 5 MiB); one part per upload is held in memory.
    "CALLREC_S3_PART_SIZE": 8 * 2**20,
    # Connections kept to the object store per process (at least the worker's threads).
    "CALLREC_S3_MAX_CONNECTIONS": 32,
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
    # Minutes between the scheduler's purge and reconciler runs (a call outlives its date by at most this).
    "CALLREC_PURGE_INTERVAL_MINUTES": 60,
    # Hours an orphan blob (no row points at it) must be old before the reconciler deletes it.
    "CALLREC_ORPHAN_GRACE_HOURS": 24,
    # Seconds a job may run before RQ stops it, and how many times a failed job is retried.
    "CALLREC_JOB_TIMEOUT": 3600,
    "CALLREC_JOB_RETRIES": 3,
    # First retry delay of a failed job in seconds; each retry waits four times longer, at most an hour.
    "CALLREC_JOB_RETRY_BASE_SECONDS": 60,
    # Seconds a running job may go without a heartbeat before the scheduler re-queues it.
    "CALLREC_JOB_STALE_SECONDS": 900,
    # Seconds between an RQ worker's heartbeats while it runs a job (RQ's job_monitoring_interval).
    "CALLREC_WORKER_HEARTBEAT_SECONDS": 5,
    # Seconds without a heartbeat (and past its own next one) after which a worker is dead: its job is re-queued.
    "CALLREC_WORKER_DEAD_AFTER_SECONDS": 20,
    # Hours an export's download link stays valid.
    "CALLREC_EXPORT_LINK_HOURS": 72,
    # Days a disclosure keeps holding its calls after its bundle was delivered (first downloaded).
    "CALLREC_DISCLOSURE_HOLD_DAYS": 30,
    # Time zone of the phone system's clock (FreePBX file names and CDR times are local).
    "CALLREC_PBX_TIMEZONE": "Europe/London",
    # Time zone of the CDR's times: None = CALLREC_PBX_TIMEZONE; "UTC" when cdr.conf [csv] has usegmtime=yes.
    "CALLREC_CDR_TIMEZONE": None,
    # Digits dialled for an outside line, taken off numbers in FreePBX file names when that makes them valid.
    "CALLREC_PBX_OUTSIDE_LINE_PREFIX": "9",
    # Practice that `flask callrec import` files recordings under when --practice is not given.
    "CALLREC_DEFAULT_PRACTICE": None,
    # Shared HMAC secrets of the ingest API, {practice_ref: secret}.
    "CALLREC_API_SECRETS": {},
    # Seconds a signed ingest request's timestamp may differ from now.
    "CALLREC_API_MAX_SKEW_SECONDS": 300,
    # Uploads of one practice the ingest API serves at once (across every process sharing
    # CALLREC_REDIS_URL; per process without it); more get 429 with Retry-After.
    "CALLREC_API_MAX_CONCURRENT_UPLOADS": 4,
    # Seconds after which an upload's slot no longer counts (a process killed mid-upload cannot free it).
    "CALLREC_API_UPLOAD_LEASE_SECONDS": 900,
    # Oldest call the ingest API accepts, in days before now (an older started_at is refused, never stored).
    "CALLREC_API_STARTED_AT_MAX_AGE_DAYS": 366,
    # How far in the future an uploaded call's started_at may be (the phone system's clock running fast).
    "CALLREC_API_STARTED_AT_MAX_AHEAD_SECONDS": 3600,
    # Override of the purpose matrix, {role: {purpose: rule}}; None keeps the policy's default.
    "CALLREC_PURPOSE_MATRIX": None,
    # Template callrec's pages extend; a host sets its own layout (blocks "title" and "content").
    "CALLREC_BASE_TEMPLATE": "callrec/base.html",
    # Roles besides owner, manager and data protection lead who may search the call log, e.g. ["staff"]
    # (a practice may set its own: callrec_practice_settings "call_log_roles").
    "CALLREC_CALL_LOG_ROLES": [],
    # Roles besides owner and manager who may link an unmatched call to a patient ("match_call_roles").
    "CALLREC_MATCH_CALL_ROLES": [],
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


# Keys whose default is None but whose value is text: an environment value is taken as it is.
TEXT_KEYS = frozenset({"CALLREC_STORAGE_DIR", "CALLREC_KEY_FILE", "CALLREC_AUDIT_SIGNING_KEY_FILE",
                       "CALLREC_REDIS_URL", "CALLREC_DEFAULT_PRACTICE", "CALLREC_CDR_TIMEZONE"})
# Shown masked by `flask callrec config`.
SECRET_KEYS = frozenset({"CALLREC_API_SECRETS", "CALLREC_KEYS"})


def from_environment(key, text):
    """An environment variable's value for ``key``: text for text keys, else JSON-decoded as Flask's
    ``from_prefixed_env`` does (``"300"`` -> 300, ``'{"p1": "s"}'`` -> a dict), falling back to the text."""
    if key in TEXT_KEYS or isinstance(DEFAULTS.get(key), str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_defaults(app, environ=None):
    """Fill every missing CALLREC_* key: from an environment variable of the same name if there is one,
    else with its default. Values the host set in its config are kept (the host's config wins)."""
    environ = os.environ if environ is None else environ
    for key, value in DEFAULTS.items():
        if key not in app.config and key in environ:
            app.config[key] = from_environment(key, environ[key])
        app.config.setdefault(key, copy.deepcopy(value))
    if app.config["CALLREC_STORAGE_DIR"] is None:
        app.config["CALLREC_STORAGE_DIR"] = os.path.join(app.instance_path, "callrec-storage")
