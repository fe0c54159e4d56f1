"""issue14 card payments: redactions (silenced ranges) and the card-payment flag on recordings

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import callrec_plugin.models

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('callrec_recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_payment_flagged_at', callrec_plugin.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('card_payment_flagged_by_ref', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('card_payment_flagged_by_name', sa.String(length=128), nullable=True))

    op.create_table('callrec_redactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('requested', sa.Text(), nullable=False),
    sa.Column('ranges', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('old_storage_key', sa.String(length=128), nullable=True),
    sa.Column('new_storage_key', sa.String(length=128), nullable=True),
    sa.Column('actor_ref', sa.String(length=64), nullable=False),
    sa.Column('actor_name', sa.String(length=128), nullable=False),
    sa.Column('created_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('done_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['recording_id'], ['callrec_recordings.id'],
                            name=op.f('fk_callrec_redactions_recording_id_callrec_recordings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_redactions'))
    )
    with op.batch_alter_table('callrec_redactions', schema=None) as batch_op:
        batch_op.create_index('ix_callrec_redactions_status', ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_redactions_recording_id'), ['recording_id'], unique=False)


def downgrade():
    with op.batch_alter_table('callrec_redactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_redactions_recording_id'))
        batch_op.drop_index('ix_callrec_redactions_status')
    op.drop_table('callrec_redactions')
    with op.batch_alter_table('callrec_recordings', schema=None) as batch_op:
        batch_op.drop_column('card_payment_flagged_by_name')
        batch_op.drop_column('card_payment_flagged_by_ref')
        batch_op.drop_column('card_payment_flagged_at')
