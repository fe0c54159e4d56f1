"""api nonces

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 13:45:43.977809
"""
from alembic import op
import sqlalchemy as sa
import callrec_plugin.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('callrec_api_nonces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('seen_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_api_nonces')),
    sa.UniqueConstraint('practice_ref', 'nonce', name='uq_callrec_api_nonces_nonce')
    )
    with op.batch_alter_table('callrec_api_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_api_nonces_seen_at'), ['seen_at'], unique=False)



def downgrade():
    with op.batch_alter_table('callrec_api_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_api_nonces_seen_at'))

    op.drop_table('callrec_api_nonces')
