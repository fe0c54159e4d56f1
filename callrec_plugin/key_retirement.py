"""Retiring a key-encryption key: the step that makes purged calls unreadable in old backups too.

Purging a call destroys its wrapped data key in the database, but a database backup taken before
the purge still holds that wrapped key; with the key-encryption key that wrapped it, the backed-up
call stays readable. Rotating (``keys new`` + ``keys rotate``) moves every live data key to a new
key-encryption key; once no live row is wrapped by the old one, ``keys retire KEY_ID`` removes it
from the key file, and every backup whose calls were wrapped by it becomes unreadable with it.
docs/jobs.md gives the schedule (rotate monthly, retire after the backup window).
"""
import os
from collections import Counter

import sqlalchemy as sa

from callrec_plugin import audit
from callrec_plugin.identity import SYSTEM
from callrec_plugin.keyring import _parse_entries, replace_private_file
from callrec_plugin.models import Export, Recording


class RetireError(ValueError):
    """The key cannot be retired (yet); the message says why and what to do."""


def wrapped_by(session, key_id):
    """{"recordings": n, "exports": n}: live data keys the key-encryption key still wraps."""
    counts = Counter()
    for name, model in (("recordings", Recording), ("exports", Export)):
        counts[name] = session.scalar(sa.select(sa.func.count()).select_from(model).where(
            model.key_id == key_id, model.wrapped_key.is_not(None))) or 0
    return counts


def retire_key(session, path, key_id, ring):
    """Remove ``key_id`` from the key file at ``path`` once nothing live is wrapped by it. Audited."""
    if key_id not in ring:
        raise RetireError(f"{key_id} is not in the key ring")
    if key_id == ring.newest_id:
        raise RetireError(f"{key_id} is the newest key (new recordings use it): add a new key and rotate first")
    if not path:
        raise RetireError("CALLREC_KEY_FILE is not set: remove the key from where your keys are kept by hand")
    still = wrapped_by(session, key_id)
    if any(still.values()):
        raise RetireError(f"{key_id} still wraps the data keys of {still['recordings']} recordings and "
                          f"{still['exports']} exports: run `flask callrec keys rotate` first")
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    entries = _parse_entries(text, f"key file {path}")  # refuse to rewrite a broken file
    if not any(kid == key_id for kid, _ in entries):
        raise RetireError(f"{key_id} is not in {path} (it comes from the environment): remove it there")
    kept = [line for line in text.splitlines(keepends=True)
            if line.split("#", 1)[0].strip().split(":", 1)[0].strip() != key_id]
    replace_private_file(path, "".join(kept))
    audit.record_many(session, [{
        "actor_ref": SYSTEM.ref, "actor_name": SYSTEM.name, "action": "key_retired", "outcome": "done",
        "object_type": "key", "object_id": key_id,
        "reason": f"key-encryption key {key_id} destroyed: backups whose data keys it wrapped are now unreadable"}])
    session.commit()
