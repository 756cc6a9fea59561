"""Alembic environment: the URL comes from the gateway's config, never from alembic.ini."""

from alembic import context

from backends.store import make_engine
from backends.store.tables import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
engine = make_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
