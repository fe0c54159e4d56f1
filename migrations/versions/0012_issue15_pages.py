"""the pages as staff use them: the names of the people who placed and released holds

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# column -> the audit action whose actor wrote it (the names of holds placed before this revision).
_NAMED_BY = {"placed_by_name": "hold_placed", "release_requested_by_name": "hold_release_requested",
             "released_by_name": "hold_released"}


def upgrade():
    with op.batch_alter_table('callrec_holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('placed_by_name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('release_requested_by_name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('released_by_name', sa.String(length=128), nullable=True))
    with op.batch_alter_table('callrec_exports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by_name', sa.String(length=128), nullable=True))
    op.execute(sa.text(
        "UPDATE callrec_exports SET requested_by_name = (SELECT e.actor_name FROM callrec_audit_events e "
        "WHERE e.actor_ref = callrec_exports.requested_by_ref AND e.practice_ref = callrec_exports.practice_ref "
        "AND e.actor_name IS NOT NULL ORDER BY e.seq DESC LIMIT 1)"))
    # The audit trail kept each actor's name: fill the new columns from it for existing holds.
    for column, action in _NAMED_BY.items():
        op.execute(sa.text(
            f"UPDATE callrec_holds SET {column} = (SELECT e.actor_name FROM callrec_audit_events e "
            "WHERE e.action = :action AND e.object_type = 'hold' "
            "AND e.object_id = CAST(callrec_holds.id AS VARCHAR(64)) ORDER BY e.seq DESC LIMIT 1)"
        ).bindparams(action=action))


def downgrade():
    with op.batch_alter_table('callrec_exports', schema=None) as batch_op:
        batch_op.drop_column('requested_by_name')
    with op.batch_alter_table('callrec_holds', schema=None) as batch_op:
        batch_op.drop_column('released_by_name')
        batch_op.drop_column('release_requested_by_name')
        batch_op.drop_column('placed_by_name')
