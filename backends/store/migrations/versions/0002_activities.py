"""activities, service flags, WS-Security nonces

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('activities',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('vo', sa.String(length=128), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('substate', sa.String(length=32), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('jsdl', sa.Text(), nullable=False),
    sa.Column('backend', sa.String(length=64), nullable=False),
    sa.Column('backend_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activities'))
    )
    op.create_index('ix_activities_owner', 'activities', ['owner'], unique=False)
    op.create_index('ix_activities_state', 'activities', ['state'], unique=False)
    op.create_table('service_flags',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_service_flags'))
    )
    op.create_table('wss_nonces',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_wss_nonces'))
    )
    op.create_index('ix_wss_nonces_expires_at', 'wss_nonces', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_wss_nonces_expires_at', table_name='wss_nonces')
    op.drop_table('wss_nonces')
    op.drop_table('service_flags')
    op.drop_index('ix_activities_state', table_name='activities')
    op.drop_index('ix_activities_owner', table_name='activities')
    op.drop_table('activities')
