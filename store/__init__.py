"""Store: ORM models, engine, migrations and repository functions."""
