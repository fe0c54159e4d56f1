"""holds approvals jobs exports disclosures

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 13:55:39.288164
"""
from alembic import op
import sqlalchemy as sa
import callrec_plugin.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('callrec_disclosures',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('recipient', sa.String(length=200), nullable=False),
    sa.Column('recipient_kind', sa.String(length=24), nullable=False),
    sa.Column('legal_basis', sa.Text(), nullable=False),
    sa.Column('reference', sa.String(length=128), nullable=False),
    sa.Column('requested_by_ref', sa.String(length=64), nullable=False),
    sa.Column('requested_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('approved_by_ref', sa.String(length=64), nullable=True),
    sa.Column('approved_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('export_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_disclosures'))
    )
    with op.batch_alter_table('callrec_disclosures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_disclosures_practice_ref'), ['practice_ref'], unique=False)

    op.create_table('callrec_exports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('patient_ref', sa.String(length=64), nullable=True),
    sa.Column('disclosure_id', sa.String(length=32), nullable=True),
    sa.Column('requested_by_ref', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('storage_key', sa.String(length=128), nullable=True),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=True),
    sa.Column('key_id', sa.String(length=64), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('ready_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('expires_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_exports'))
    )
    with op.batch_alter_table('callrec_exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_exports_practice_ref'), ['practice_ref'], unique=False)

    op.create_table('callrec_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rq_job_id', sa.String(length=64), nullable=True),
    sa.Column('object_id', sa.String(length=32), nullable=True),
    sa.Column('requested_by_ref', sa.String(length=64), nullable=True),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('started_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('heartbeat_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('finished_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_jobs'))
    )
    with op.batch_alter_table('callrec_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_jobs_practice_ref'), ['practice_ref'], unique=False)
        batch_op.create_index('ix_callrec_jobs_state', ['status', 'kind'], unique=False)

    op.create_table('callrec_tombstones',
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('patient_ref', sa.String(length=64), nullable=True),
    sa.Column('started_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('retain_until', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('purged_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('recording_id', name=op.f('pk_callrec_tombstones'))
    )
    with op.batch_alter_table('callrec_tombstones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_tombstones_practice_ref'), ['practice_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_tombstones_purged_at'), ['purged_at'], unique=False)

    op.create_table('callrec_assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('staff_user_ref', sa.String(length=64), nullable=False),
    sa.Column('assessor_ref', sa.String(length=64), nullable=False),
    sa.Column('assessor_name', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('created_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('responded_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['recording_id'], ['callrec_recordings.id'], name=op.f('fk_callrec_assessments_recording_id_callrec_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_assessments'))
    )
    with op.batch_alter_table('callrec_assessments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_assessments_recording_id'), ['recording_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_assessments_staff_user_ref'), ['staff_user_ref'], unique=False)

    op.create_table('callrec_disclosure_items',
    sa.Column('disclosure_id', sa.String(length=32), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['disclosure_id'], ['callrec_disclosures.id'], name=op.f('fk_callrec_disclosure_items_disclosure_id_callrec_disclosures')),
    sa.PrimaryKeyConstraint('disclosure_id', 'recording_id', name=op.f('pk_callrec_disclosure_items'))
    )
    op.create_table('callrec_erasure_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by_ref', sa.String(length=64), nullable=False),
    sa.Column('requested_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('approved_by_ref', sa.String(length=64), nullable=True),
    sa.Column('approved_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('withdrawn_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['recording_id'], ['callrec_recordings.id'], name=op.f('fk_callrec_erasure_requests_recording_id_callrec_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_erasure_requests'))
    )
    with op.batch_alter_table('callrec_erasure_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_erasure_requests_recording_id'), ['recording_id'], unique=False)



def downgrade():
    with op.batch_alter_table('callrec_erasure_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_erasure_requests_recording_id'))

    op.drop_table('callrec_erasure_requests')
    op.drop_table('callrec_disclosure_items')
    with op.batch_alter_table('callrec_assessments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_assessments_staff_user_ref'))
        batch_op.drop_index(batch_op.f('ix_callrec_assessments_recording_id'))

    op.drop_table('callrec_assessments')
    with op.batch_alter_table('callrec_tombstones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_tombstones_purged_at'))
        batch_op.drop_index(batch_op.f('ix_callrec_tombstones_practice_ref'))

    op.drop_table('callrec_tombstones')
    with op.batch_alter_table('callrec_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_callrec_jobs_state')
        batch_op.drop_index(batch_op.f('ix_callrec_jobs_practice_ref'))

    op.drop_table('callrec_jobs')
    with op.batch_alter_table('callrec_exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_exports_practice_ref'))

    op.drop_table('callrec_exports')
    with op.batch_alter_table('callrec_disclosures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_disclosures_practice_ref'))

    op.drop_table('callrec_disclosures')
