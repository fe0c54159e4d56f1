"""Moving an installation's blobs from one storage backend to the other (``flask callrec storage migrate``).

Blobs are copied as they are stored: CRE1 ciphertext, never decrypted (the data keys stay wrapped in
the database, and the copy needs no key at all). A copy is resumable: a blob already at the target
with the same size is skipped, so the command can run while the old backend is live, and once more
after ingest is paused, before the switch. A blob is written at the target whole or not at all (both
backends' ``open_write``), so an interrupted run leaves nothing half-copied. The source is left as it
was: delete it once the installation runs on the target.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import click
import sqlalchemy as sa
from flask.cli import AppGroup

_CHUNK = 1024 * 1024
BACKENDS = ("folder", "s3")


@dataclass
class MigrationReport:
    copied: int = 0
    skipped: int = 0
    copied_bytes: int = 0
    missing_at_target: list = field(default_factory=list)  # (table, storage key) of rows the target lacks

    def lines(self):
        yield f"copied {self.copied} blobs ({self.copied_bytes:,} bytes); {self.skipped} already at the target"
        if self.missing_at_target:
            yield f"{len(self.missing_at_target)} rows point at blobs the target does not have (first: " \
                  f"{self.missing_at_target[0][0]} {self.missing_at_target[0][1]})"
        else:
            yield "every recording and export row's blob is at the target"


def backend_named(app, kind):
    """The backend ``kind`` ("folder" or "s3") from the app's config, whichever one is in use."""
    if kind == "folder":
        from callrec_plugin.storage import LocalEncryptedStorage

        return LocalEncryptedStorage(app.config["CALLREC_STORAGE_DIR"])
    if kind == "s3":
        from callrec_plugin.storage_s3 import S3EncryptedStorage

        return S3EncryptedStorage.from_config(app.config)
    raise ValueError(f"unknown storage backend {kind!r} (expected one of {', '.join(BACKENDS)})")


def _target_sizes(target):
    """{key: size} of the target's blobs, in one listing (an object store lists sizes with the keys)."""
    objects = getattr(target, "iter_objects", None)
    if objects is not None:
        return dict(objects())
    return {key: target.size(key) for key in target.iter_keys()}


def copy_blobs(source, target, echo=lambda line: None):
    """Copy every blob of ``source`` missing (or of another size) at ``target``; returns a report."""
    report = MigrationReport()
    present = _target_sizes(target)
    for key in source.iter_keys():
        with source.open_read(key) as blob:
            size = getattr(blob, "stored_size", None)
            size = source.size(key) if size is None else size
            if present.get(key) == size:
                report.skipped += 1
                continue
            with target.open_write(key) as out:
                while chunk := blob.read(_CHUNK):
                    out.write(chunk)
        if target.size(key) != size:
            raise RuntimeError(f"copy of {key} has {target.size(key)} bytes at the target, not {size}")
        report.copied += 1
        report.copied_bytes += size
        if report.copied % 100 == 0:
            echo(f"… {report.copied} copied")
    return report


def rows_missing_at(target, session):
    """(table, key) of every live recording and export whose blob the target lacks."""
    from callrec_plugin.models import Export, Recording, RecordingStatus

    present = set(target.iter_keys())
    keys = session.execute(
        sa.select(sa.literal("recording"), Recording.storage_key).where(
            Recording.storage_key.is_not(None), Recording.status != RecordingStatus.PURGED)
        .union_all(sa.select(sa.literal("export"), Export.storage_key).where(
            Export.storage_key.is_not(None), Export.status == "ready"))
    ).all()
    return [(table, key) for table, key in keys if key not in present]


def storage_group():
    group = AppGroup("storage", help="Encrypted blob storage: copy blobs between backends.")

    @group.command("migrate")
    @click.option("--from", "source_kind", type=click.Choice(BACKENDS), required=True,
                  help="The backend the blobs are in now.")
    @click.option("--to", "target_kind", type=click.Choice(BACKENDS), required=True,
                  help="The backend to copy them to (configured by CALLREC_STORAGE_DIR or CALLREC_S3_BUCKET and the other S3 settings).")
    def migrate(source_kind, target_kind):
        """Copy every blob (CRE1 ciphertext, not decrypted) to the other backend; run it again to copy
        what arrived since. Then set CALLREC_STORAGE_BACKEND to the target and restart."""
        from flask import current_app

        from callrec_plugin.state import db_session

        if source_kind == target_kind:
            raise click.UsageError("--from and --to name the same backend")
        app = current_app._get_current_object()
        source, target = backend_named(app, source_kind), backend_named(app, target_kind)
        click.echo(f"copying blobs from {source!r} to {target!r}")
        report = copy_blobs(source, target, echo=click.echo)
        report.missing_at_target = rows_missing_at(target, db_session())
        for line in report.lines():
            click.echo(line)
        if report.missing_at_target:
            raise SystemExit(1)

    return group
