"""activities: what to hand over again after a crash (launch) and who is handing it over
(handler, lease_until)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('activities') as batch:
        batch.add_column(sa.Column('launch', sa.Text(), nullable=False, server_default=''))
        batch.add_column(
            sa.Column('handler', sa.String(length=128), nullable=False, server_default='')
        )
        batch.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('activities') as batch:
        batch.drop_column('lease_until')
        batch.drop_column('handler')
        batch.drop_column('launch')
