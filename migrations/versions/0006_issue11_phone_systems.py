"""issue11 phone systems: CDR fields on calls, the objection lifecycle, import runs

Revision ID: 0006
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import callrec_plugin.models

revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('callrec_recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('caller_name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('cdr_userfield', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('accountcode', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('linkedid', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_callrec_recordings_linkedid'), ['linkedid'], unique=False)
    with op.batch_alter_table('callrec_patient_objections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('method', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_by_ref', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_by_name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('withdrawal_reason', sa.Text(), nullable=True))
    op.create_table('callrec_import_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('root', sa.Text(), nullable=False),
    sa.Column('finished_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('imported', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('originals_left', sa.Integer(), nullable=False),
    sa.Column('originals_removed', sa.Integer(), nullable=False),
    sa.Column('needs_attention', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_import_runs'))
    )
    with op.batch_alter_table('callrec_import_runs', schema=None) as batch_op:
        batch_op.create_index('ix_callrec_import_runs_practice', ['practice_ref', 'finished_at'], unique=False)


def downgrade():
    with op.batch_alter_table('callrec_import_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_callrec_import_runs_practice')
    op.drop_table('callrec_import_runs')
    with op.batch_alter_table('callrec_patient_objections', schema=None) as batch_op:
        batch_op.drop_column('withdrawal_reason')
        batch_op.drop_column('withdrawn_by_name')
        batch_op.drop_column('withdrawn_by_ref')
        batch_op.drop_column('method')
    with op.batch_alter_table('callrec_recordings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_recordings_linkedid'))
        batch_op.drop_column('linkedid')
        batch_op.drop_column('accountcode')
        batch_op.drop_column('cdr_userfield')
        batch_op.drop_column('caller_name')
