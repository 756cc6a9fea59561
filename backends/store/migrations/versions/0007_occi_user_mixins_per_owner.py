"""occi_user_mixins: a user mixin is its owner's (unique per owner and location, and per
owner and scheme+term), no longer one location for the whole gateway (issue 16.16)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('occi_user_mixins') as batch:
        batch.drop_constraint('uq_occi_user_mixins_location', type_='unique')
        batch.create_unique_constraint(
            'uq_occi_user_mixins_owner_location', ['owner', 'location']
        )
        batch.create_unique_constraint(
            'uq_occi_user_mixins_owner_category', ['owner', 'scheme', 'term']
        )
        batch.create_index('ix_occi_user_mixins_owner', ['owner'], unique=False)


def downgrade() -> None:
    # going back makes locations global again: keep the oldest definition of each
    op.execute(
        "DELETE FROM occi_user_mixins WHERE id NOT IN "
        "(SELECT MIN(id) FROM occi_user_mixins GROUP BY location)"
    )
    with op.batch_alter_table('occi_user_mixins') as batch:
        batch.drop_index('ix_occi_user_mixins_owner')
        batch.drop_constraint('uq_occi_user_mixins_owner_category', type_='unique')
        batch.drop_constraint('uq_occi_user_mixins_owner_location', type_='unique')
        batch.create_unique_constraint('uq_occi_user_mixins_location', ['location'])
