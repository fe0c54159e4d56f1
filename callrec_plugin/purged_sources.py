"""Where a purged call came from, kept as a keyed digest on its tombstone, so that it is never stored again.

A phone system that keeps its originals (a FreePBX spool imported without ``--remove-originals``, an
ingest client retrying an old upload) can hand callrec a call it has already deleted, under its
retention period or a lawful erasure; storing it afresh would undo the deletion. The purge clears the
call's ``source_ref`` (a PBX file name holds both phone numbers), so the tombstone keeps only an HMAC
of (practice, source, source_ref) under a key derived from the app's ``SECRET_KEY``: it recognises the
same call again and tells nothing about the numbers. Rotating ``SECRET_KEY`` forgets the digests made
before (docs/deploy.md says so).
"""
import hashlib
import hmac

import sqlalchemy as sa
from flask import current_app

from callrec_plugin.models import Tombstone
from callrec_plugin.state import db_session

_KEY_LABEL = b"callrec tombstone source digest\x00"


def _digest_key(app=None):
    secret = (app or current_app).config.get("SECRET_KEY")
    if not secret:
        return None
    return hashlib.sha256(_KEY_LABEL + (secret.encode() if isinstance(secret, str) else bytes(secret))).digest()


def source_digest(practice_ref, source, source_ref, app=None):
    """The hex HMAC-SHA256 naming this call's origin, or None without a SECRET_KEY or a source_ref."""
    key = _digest_key(app)
    if key is None or not source_ref:
        return None
    message = "\x00".join((str(practice_ref), str(source), str(source_ref))).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def purged_before(practice_ref, source, source_ref):
    """The tombstone of this call if callrec stored it before and has purged it since, else None."""
    digest = source_digest(practice_ref, source, source_ref)
    if digest is None:
        return None
    return db_session().scalar(sa.select(Tombstone).where(Tombstone.practice_ref == practice_ref,
                                                          Tombstone.source_digest == digest).limit(1))
