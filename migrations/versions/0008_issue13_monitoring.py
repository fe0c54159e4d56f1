"""issue13 monitoring: sampling plans and draws, spot checks, the rubric and scores, training consent

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import callrec_plugin.models

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('callrec_assessments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('response_stance', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', callrec_plugin.models.UTCDateTime(), nullable=True))

    op.create_table('callrec_assessment_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('criterion_key', sa.String(length=48), nullable=False),
    sa.Column('criterion_label', sa.String(length=200), nullable=False),
    sa.Column('score', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['assessment_id'], ['callrec_assessments.id'],
                            name=op.f('fk_callrec_assessment_scores_assessment_id_callrec_assessments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_assessment_scores'))
    )
    with op.batch_alter_table('callrec_assessment_scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_assessment_scores_assessment_id'), ['assessment_id'],
                              unique=False)

    op.create_table('callrec_rubric_criteria',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=48), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('created_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('retired_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_rubric_criteria')),
    sa.UniqueConstraint('practice_ref', 'key', name='uq_callrec_rubric_criteria_key')
    )

    op.create_table('callrec_sampling_plans',
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('calls_per_staff', sa.Integer(), nullable=False),
    sa.Column('inbound_only', sa.Boolean(), nullable=False),
    sa.Column('min_duration_seconds', sa.Float(), nullable=False),
    sa.Column('updated_by_ref', sa.String(length=64), nullable=True),
    sa.Column('updated_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('practice_ref', name=op.f('pk_callrec_sampling_plans'))
    )

    op.create_table('callrec_spot_check_draws',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('calls_per_staff', sa.Integer(), nullable=False),
    sa.Column('inbound_only', sa.Boolean(), nullable=False),
    sa.Column('min_duration_seconds', sa.Float(), nullable=False),
    sa.Column('drawn_at', callrec_plugin.models.UTCDateTime(), nullable=False),
    sa.Column('drawn_by_ref', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_spot_check_draws')),
    sa.UniqueConstraint('practice_ref', 'month', name='uq_callrec_spot_check_draws_month')
    )

    op.create_table('callrec_spot_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('draw_id', sa.Integer(), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('staff_user_ref', sa.String(length=64), nullable=False),
    sa.Column('staff_name', sa.String(length=128), nullable=False),
    sa.Column('population', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['draw_id'], ['callrec_spot_check_draws.id'],
                            name=op.f('fk_callrec_spot_checks_draw_id_callrec_spot_check_draws')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_spot_checks')),
    sa.UniqueConstraint('draw_id', 'recording_id', name='uq_callrec_spot_checks_call')
    )
    with op.batch_alter_table('callrec_spot_checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_spot_checks_draw_id'), ['draw_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_callrec_spot_checks_recording_id'), ['recording_id'], unique=False)

    op.create_table('callrec_training_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recording_id', sa.String(length=32), nullable=False),
    sa.Column('practice_ref', sa.String(length=64), nullable=False),
    sa.Column('staff_user_ref', sa.String(length=64), nullable=False),
    sa.Column('training_note', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('proposed_by_ref', sa.String(length=64), nullable=True),
    sa.Column('proposed_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.Column('answered_at', callrec_plugin.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callrec_training_consents')),
    sa.UniqueConstraint('recording_id', name=op.f('uq_callrec_training_consents_recording_id'))
    )
    with op.batch_alter_table('callrec_training_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callrec_training_consents_staff_user_ref'), ['staff_user_ref'],
                              unique=False)
    _approvals_become_requests()


def _approvals_become_requests():
    """Calls approved for training before consent existed: nobody asked the member of staff on them, so
    each becomes a request to them, and the call leaves the library until they consent."""
    recordings = sa.table('callrec_recordings', sa.column('id'), sa.column('practice_ref'),
                          sa.column('staff_user_ref'), sa.column('approved_for_training', sa.Boolean),
                          sa.column('training_approved_by_ref'))
    consents = sa.table('callrec_training_consents', sa.column('recording_id'), sa.column('practice_ref'),
                        sa.column('staff_user_ref'), sa.column('training_note'), sa.column('status'),
                        sa.column('proposed_by_ref'))
    approved = recordings.c.approved_for_training.is_(True)
    op.execute(consents.insert().from_select(
        ['recording_id', 'practice_ref', 'staff_user_ref', 'training_note', 'status', 'proposed_by_ref'],
        sa.select(recordings.c.id, recordings.c.practice_ref, recordings.c.staff_user_ref, sa.literal(''),
                  sa.literal('requested'), recordings.c.training_approved_by_ref)
        .where(approved, recordings.c.staff_user_ref.is_not(None))))
    op.execute(recordings.update().where(approved).values(approved_for_training=False, training_approved_by_ref=None))


def downgrade():
    with op.batch_alter_table('callrec_training_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_training_consents_staff_user_ref'))
    op.drop_table('callrec_training_consents')
    with op.batch_alter_table('callrec_spot_checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_spot_checks_recording_id'))
        batch_op.drop_index(batch_op.f('ix_callrec_spot_checks_draw_id'))
    op.drop_table('callrec_spot_checks')
    op.drop_table('callrec_spot_check_draws')
    op.drop_table('callrec_sampling_plans')
    op.drop_table('callrec_rubric_criteria')
    with op.batch_alter_table('callrec_assessment_scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callrec_assessment_scores_assessment_id'))
    op.drop_table('callrec_assessment_scores')
    with op.batch_alter_table('callrec_assessments', schema=None) as batch_op:
        batch_op.drop_column('acknowledged_at')
        batch_op.drop_column('response_stance')
