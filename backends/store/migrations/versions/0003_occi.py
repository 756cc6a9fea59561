"""OCCI entities (ownership and what the hypervisor does not hold) and user mixins

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('occi_entities',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=255), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('vo', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=512), nullable=False),
    sa.Column('summary', sa.String(length=2048), nullable=False),
    sa.Column('mixins', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=512), nullable=False),
    sa.Column('target', sa.String(length=512), nullable=False),
    sa.Column('links', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_occi_entities'))
    )
    op.create_index(op.f('ix_occi_entities_kind'), 'occi_entities', ['kind'], unique=False)
    op.create_index(op.f('ix_occi_entities_owner'), 'occi_entities', ['owner'], unique=False)
    op.create_index(op.f('ix_occi_entities_vo'), 'occi_entities', ['vo'], unique=False)
    op.create_index(op.f('ix_occi_entities_source'), 'occi_entities', ['source'], unique=False)
    op.create_index(op.f('ix_occi_entities_target'), 'occi_entities', ['target'], unique=False)
    op.create_table('occi_collection_versions',
    sa.Column('kind', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('kind', name=op.f('pk_occi_collection_versions'))
    )
    op.create_table('occi_user_mixins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scheme', sa.String(length=512), nullable=False),
    sa.Column('term', sa.String(length=128), nullable=False),
    sa.Column('title', sa.String(length=512), nullable=False),
    sa.Column('location', sa.String(length=512), nullable=False),
    sa.Column('depends', sa.JSON(), nullable=False),
    sa.Column('applies', sa.JSON(), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_occi_user_mixins')),
    sa.UniqueConstraint('location', name=op.f('uq_occi_user_mixins_location'))
    )


def downgrade() -> None:
    op.drop_table('occi_user_mixins')
    op.drop_table('occi_collection_versions')
    op.drop_index(op.f('ix_occi_entities_target'), table_name='occi_entities')
    op.drop_index(op.f('ix_occi_entities_source'), table_name='occi_entities')
    op.drop_index(op.f('ix_occi_entities_vo'), table_name='occi_entities')
    op.drop_index(op.f('ix_occi_entities_owner'), table_name='occi_entities')
    op.drop_index(op.f('ix_occi_entities_kind'), table_name='occi_entities')
    op.drop_table('occi_entities')
