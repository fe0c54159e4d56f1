"""a purged call is never stored again: the tombstone keeps a keyed digest of where the call came from

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    # Tombstones written before this revision have none: their source_ref was cleared by the purge.
    with op.batch_alter_table('callrec_tombstones', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_digest', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_callrec_tombstones_source_digest', ['source_digest'], unique=False)


def downgrade():
    with op.batch_alter_table('callrec_tombstones', schema=None) as batch_op:
        batch_op.drop_index('ix_callrec_tombstones_source_digest')
        batch_op.drop_column('source_digest')
