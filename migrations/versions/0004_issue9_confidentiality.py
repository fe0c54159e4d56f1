"""issue9 confidentiality: the subject-access register, bundles tied to a request, disclosure delivery

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import callrec_plugin.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('callrec_subject_access_requests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('patient_ref', sa.String(length=64), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('identity_method', sa.Text(), nullable=False),
    sa.Column('identity_verified_by', sa.String(length=128), nullable=False),
    sa.Column('requester_reference', sa.String(length=128), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('extension_months', sa.Integer(), server_default='0', nullable=False),
    sa.Column('extension_reason', sa.Text(), nullable=True),
    sa.Column('extended_by_ref', sa.String(length=64), nullable=True),
    sa.Column('extended_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('registered_by_ref', sa.String(length=64), nullable=False),
    sa.Column('registered_by_name', sa.String(length=128), nullable=False),
    sa.Column('registered_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('responded_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_subject_access_requests'))
    )
    with op.batch_alter_table('callrec_subject_access_requests', schema=None) as batch_op:
        batch_op.create_index('ix_callrec_subject_access_requests_due', ['practice_ref', 'due_on'], unique=False)

    with op.batch_alter_table('callrec_exports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject_access_id', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_callrec_exports_subject_access_id'), ['subject_access_id'],
                              unique=False)

    with op.batch_alter_table('callrec_disclosures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivered_at', callrec_plugin.models.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('callrec_disclosures', schema=None) as batch_op:
        batch_op.drop_column('delivered_at')
    with op.batch_alter_table('callrec_exports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_exports_subject_access_id'))
        batch_op.drop_column('subject_access_id')
    with op.batch_alter_table('callrec_subject_access_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_callrec_subject_access_requests_due')
    op.drop_table('callrec_subject_access_requests')
