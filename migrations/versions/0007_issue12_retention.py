"""issue12 retention: retention extensions, purge runs, and tombstones that say why, by what, and until when

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

from callrec_plugin.models import UTCDateTime

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("callrec_tombstones") as batch:
        batch.add_column(sa.Column("purged_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("approved_by_refs", sa.String(160), nullable=True))
        batch.add_column(sa.Column("erasure_request_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("delete_after", UTCDateTime(), nullable=True))
        batch.create_index("ix_callrec_tombstones_delete_after", ["delete_after"])
    op.create_table(
        "callrec_retention_extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(32), nullable=False),
        sa.Column("practice_ref", sa.String(64), nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("reason_text", sa.Text(), nullable=False),
        sa.Column("previous_until", UTCDateTime(), nullable=False),
        sa.Column("new_until", UTCDateTime(), nullable=False),
        sa.Column("extended_by_ref", sa.String(64), nullable=False),
        sa.Column("extended_by_name", sa.String(128), nullable=False),
        sa.Column("extended_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["recording_id"], ["callrec_recordings.id"],
                                name="fk_callrec_retention_extensions_recording_id_callrec_recordings"),
        sa.PrimaryKeyConstraint("id", name="pk_callrec_retention_extensions"),
    )
    op.create_index("ix_callrec_retention_extensions_recording_id", "callrec_retention_extensions", ["recording_id"])
    op.create_index("ix_callrec_retention_extensions_practice_ref", "callrec_retention_extensions", ["practice_ref"])
    op.create_table(
        "callrec_purge_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("purged", sa.Integer(), nullable=False),
        sa.Column("tombstones_deleted", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_callrec_purge_runs"),
    )
    op.create_index("ix_callrec_purge_runs_started_at", "callrec_purge_runs", ["started_at"])


def downgrade():
    op.drop_index("ix_callrec_purge_runs_started_at", table_name="callrec_purge_runs")
    op.drop_table("callrec_purge_runs")
    op.drop_index("ix_callrec_retention_extensions_practice_ref", table_name="callrec_retention_extensions")
    op.drop_index("ix_callrec_retention_extensions_recording_id", table_name="callrec_retention_extensions")
    op.drop_table("callrec_retention_extensions")
    with op.batch_alter_table("callrec_tombstones") as batch:
        batch.drop_index("ix_callrec_tombstones_delete_after")
        batch.drop_column("delete_after")
        batch.drop_column("erasure_request_id")
        batch.drop_column("approved_by_refs")
        batch.drop_column("purged_by")
