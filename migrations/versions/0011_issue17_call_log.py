"""the practice's call log: number suffix search, log indexes, patient matches

Revision ID: 0011
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa
import callrec_plugin.models


revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('callrec_recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_number_rev', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_callrec_recordings_log', ['practice_ref', 'started_at', 'id'], unique=False)
        batch_op.create_index('ix_callrec_recordings_log_staff', ['practice_ref', 'staff_user_ref', 'started_at'],
                              unique=False)
        batch_op.create_index('ix_callrec_recordings_log_number', ['practice_ref', 'external_number_rev'],
                              unique=False, postgresql_ops={'external_number_rev': 'text_pattern_ops'})
        batch_op.create_index('ix_callrec_recordings_log_unmatched', ['practice_ref', 'started_at'], unique=False,
                              postgresql_where=sa.text('patient_ref IS NULL'),
                              sqlite_where=sa.text('patient_ref IS NULL'))
    _fill_reversed_numbers()

    op.create_table('callrec_patient_matches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('patient_ref', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('proposed_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('decided_by_ref', sa.String(length=64), nullable=True),
    sa.Column('decided_by_name', sa.String(length=128), nullable=True),
    sa.Column('decided_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('undone_by_ref', sa.String(length=64), nullable=True),
    sa.Column('undone_by_name', sa.String(length=128), nullable=True),
    sa.Column('undone_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('undo_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['recording_id'], ['callrec_recordings.id'],
                            name=op.f('fk_callrec_patient_matches_recording_id_callrec_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_patient_matches'))
    )
    with op.batch_alter_table('callrec_patient_matches', schema=None) as batch_op:
        batch_op.create_index('ix_callrec_patient_matches_status', ['practice_ref', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_patient_matches_recording_id'), ['recording_id'], unique=False)


def _fill_reversed_numbers():
    # Calls stored before this revision: their numbers become searchable by ending too.
    from callrec_plugin.call_log import reversed_digits

    recordings = sa.table('callrec_recordings', sa.column('id'), sa.column('external_number'),
                          sa.column('external_number_rev'))
    connection = op.get_bind()
    rows = connection.execute(sa.select(recordings.c.id, recordings.c.external_number)
                              .where(recordings.c.external_number.is_not(None))).all()
    for recording_id, number in rows:
        connection.execute(sa.update(recordings).where(recordings.c.id == recording_id)
                           .values(external_number_rev=reversed_digits(number)))


def downgrade():
    with op.batch_alter_table('callrec_patient_matches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_patient_matches_recording_id'))
        batch_op.drop_index('ix_callrec_patient_matches_status')
    op.drop_table('callrec_patient_matches')
    with op.batch_alter_table('callrec_recordings', schema=None) as batch_op:
        batch_op.drop_index('ix_callrec_recordings_log_unmatched',
                            postgresql_where=sa.text('patient_ref IS NULL'),
                            sqlite_where=sa.text('patient_ref IS NULL'))
        batch_op.drop_index('ix_callrec_recordings_log_number')
        batch_op.drop_index('ix_callrec_recordings_log_staff')
        batch_op.drop_index('ix_callrec_recordings_log')
        batch_op.drop_column('external_number_rev')
