"""initial callrec tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 13:40:50.205338
"""
from alembic import op
import sqlalchemy as sa
import callrec_plugin.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('callrec_audit_events',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('occurred_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('actor_ref', sa.String(length=64), nullable=True),
    sa.Column('actor_name', sa.String(length=128), nullable=True),
    sa.Column('roles', sa.String(length=256), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=48), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=True),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('recording_id', sa.String(length=32), nullable=True),
    sa.Column('patient_ref', sa.String(length=64), nullable=True),
    sa.Column('purpose', sa.String(length=24), nullable=True),
    sa.Column('justification', sa.Text(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_callrec_audit_events'))
    )
    with op.batch_alter_table('callrec_audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_audit_events_actor_ref'), ['actor_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_audit_events_patient_ref'), ['patient_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_audit_events_practice_ref'), ['practice_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_audit_events_recording_id'), ['recording_id'], unique=False)

    op.create_table('callrec_patient_objections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('patient_ref', sa.String(length=64), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('recorded_by_ref', sa.String(length=64), nullable=False),
    sa.Column('recorded_by_name', sa.String(length=128), nullable=False),
    sa.Column('recorded_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('withdrawn_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_patient_objections'))
    )
    with op.batch_alter_table('callrec_patient_objections', schema=None) as batch_op:
        batch_op.create_index('ix_callrec_patient_objections_patient', ['practice_ref', 'patient_ref'], unique=False)

    op.create_table('callrec_recordings',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('patient_ref', sa.String(length=64), nullable=True),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('started_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('duration_seconds', sa.Float(), nullable=False),
    sa.Column('from_number', sa.String(length=32), nullable=True),
    sa.Column('to_number', sa.String(length=32), nullable=True),
    sa.Column('external_number', sa.String(length=32), nullable=True),
    sa.Column('staff_extension', sa.String(length=32), nullable=True),
    sa.Column('staff_user_ref', sa.String(length=64), nullable=True),
    sa.Column('staff_name', sa.String(length=128), nullable=True),
    sa.Column('disposition', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('short_call', sa.Boolean(), nullable=False),
    sa.Column('recorded_despite_objection', sa.Boolean(), nullable=False),
    sa.Column('approved_for_training', sa.Boolean(), nullable=False),
    sa.Column('training_approved_by_ref', sa.String(length=64), nullable=True),
    sa.Column('retain_until', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('storage_key', sa.String(length=128), nullable=True),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=True),
    sa.Column('key_id', sa.String(length=64), nullable=True),
    sa.Column('audio_format', sa.String(length=16), nullable=True),
    sa.Column('mime_type', sa.String(length=64), nullable=True),
    sa.Column('plaintext_size', sa.BigInteger(), nullable=False),
    sa.Column('stored_size', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=160), nullable=False),
    sa.Column('created_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('purged_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_recordings')),
    sa.UniqueConstraint('practice_ref', 'source', 'source_ref', name='uq_callrec_recordings_source')
    )
    with op.batch_alter_table('callrec_recordings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_recordings_external_number'), ['external_number'], unique=False)
        batch_op.create_index('ix_callrec_recordings_patient', ['practice_ref', 'patient_ref', 'started_at', 'id'], unique=False)
        batch_op.create_index('ix_callrec_recordings_retention', ['status', 'retain_until'], unique=False)

    op.create_table('callrec_access_grants',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('user_ref', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=24), nullable=False),
    sa.Column('purpose', sa.String(length=24), nullable=False),
    sa.Column('complaint_ref', sa.String(length=64), nullable=True),
    sa.Column('justification', sa.Text(), nullable=True),
    sa.Column('created_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('audit_seq', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['recording_id'], ['callrec_recordings.id'], name=op.f('fk_callrec_access_grants_recording_id_callrec_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_access_grants'))
    )
    with op.batch_alter_table('callrec_access_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_access_grants_recording_id'), ['recording_id'], unique=False)

    op.create_table('callrec_complaint_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('complaint_ref', sa.String(length=64), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('linked_by_ref', sa.String(length=64), nullable=False),
    sa.Column('linked_by_name', sa.String(length=128), nullable=False),
    sa.Column('linked_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('unlinked_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('unlinked_by_ref', sa.String(length=64), nullable=True),
    sa.Column('unlink_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['recording_id'], ['callrec_recordings.id'], name=op.f('fk_callrec_complaint_links_recording_id_callrec_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_complaint_links'))
    )
    with op.batch_alter_table('callrec_complaint_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_complaint_links_complaint_ref'), ['complaint_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_complaint_links_recording_id'), ['recording_id'], unique=False)

    op.create_table('callrec_holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('group_id', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('complaint_ref', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('external_reference', sa.String(length=128), nullable=True),
    sa.Column('placed_by_ref', sa.String(length=64), nullable=False),
    sa.Column('placed_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('release_requested_by_ref', sa.String(length=64), nullable=True),
    sa.Column('release_requested_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('released_by_ref', sa.String(length=64), nullable=True),
    sa.Column('released_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['recording_id'], ['callrec_recordings.id'], name=op.f('fk_callrec_holds_recording_id_callrec_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_holds'))
    )
    with op.batch_alter_table('callrec_holds', schema=None) as batch_op:
        batch_op.create_index('ix_callrec_holds_active', ['recording_id', 'released_at'], unique=False)



def downgrade():
    with op.batch_alter_table('callrec_holds', schema=None) as batch_op:
        batch_op.drop_index('ix_callrec_holds_active')

    op.drop_table('callrec_holds')
    with op.batch_alter_table('callrec_complaint_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_complaint_links_recording_id'))
        batch_op.drop_index(batch_op.f('ix_callrec_complaint_links_complaint_ref'))

    op.drop_table('callrec_complaint_links')
    with op.batch_alter_table('callrec_access_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_access_grants_recording_id'))

    op.drop_table('callrec_access_grants')
    with op.batch_alter_table('callrec_recordings', schema=None) as batch_op:
        batch_op.drop_index('ix_callrec_recordings_retention')
        batch_op.drop_index('ix_callrec_recordings_patient')
        batch_op.drop_index(batch_op.f('ix_callrec_recordings_external_number'))

    op.drop_table('callrec_recordings')
    with op.batch_alter_table('callrec_patient_objections', schema=None) as batch_op:
        batch_op.drop_index('ix_callrec_patient_objections_patient')

    op.drop_table('callrec_patient_objections')
    with op.batch_alter_table('callrec_audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_audit_events_recording_id'))
        batch_op.drop_index(batch_op.f('ix_callrec_audit_events_practice_ref'))
        batch_op.drop_index(batch_op.f('ix_callrec_audit_events_patient_ref'))
        batch_op.drop_index(batch_op.f('ix_callrec_audit_events_actor_ref'))

    op.drop_table('callrec_audit_events')
