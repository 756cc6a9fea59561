"""SAML service provider: outstanding AuthnRequests, assertion replay cache, sessions

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('saml_requests',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('idp', sa.String(length=1024), nullable=False),
    sa.Column('return_to', sa.String(length=2048), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saml_requests'))
    )
    op.create_index(op.f('ix_saml_requests_expires_at'), 'saml_requests', ['expires_at'], unique=False)
    op.create_table('saml_replay',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('issuer', sa.String(length=1024), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_saml_replay'))
    )
    op.create_index(op.f('ix_saml_replay_expires_at'), 'saml_replay', ['expires_at'], unique=False)
    op.create_table('saml_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=1024), nullable=False),
    sa.Column('principal', sa.JSON(), nullable=False),
    sa.Column('idp', sa.String(length=1024), nullable=False),
    sa.Column('name_id', sa.String(length=1024), nullable=False),
    sa.Column('name_id_format', sa.String(length=256), nullable=False),
    sa.Column('session_index', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saml_sessions'))
    )
    op.create_index(op.f('ix_saml_sessions_expires_at'), 'saml_sessions', ['expires_at'], unique=False)
    op.create_index(op.f('ix_saml_sessions_session_index'), 'saml_sessions', ['session_index'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_saml_sessions_session_index'), table_name='saml_sessions')
    op.drop_index(op.f('ix_saml_sessions_expires_at'), table_name='saml_sessions')
    op.drop_table('saml_sessions')
    op.drop_index(op.f('ix_saml_replay_expires_at'), table_name='saml_replay')
    op.drop_table('saml_replay')
    op.drop_index(op.f('ix_saml_requests_expires_at'), table_name='saml_requests')
    op.drop_table('saml_requests')
