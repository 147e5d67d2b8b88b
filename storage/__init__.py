"""Storage: SQLAlchemy models, Alembic migrations, sessions, site files and the queries the edges run."""
