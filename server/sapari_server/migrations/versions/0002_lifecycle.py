"""storage lifecycle (purged_at) and 64-bit event ids

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 23:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PURGEABLE = ("clips", "artifacts", "exports")


def upgrade() -> None:
    for table in PURGEABLE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True))
    # Signed GETs and the lifecycle look objects up by key.
    for table in ("artifacts", "exports"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f'ix_{table}_object_key'), ['object_key'])
    if op.get_bind().dialect.name == "postgresql":
        # SQLite's INTEGER PRIMARY KEY is 64-bit already; PostgreSQL's SERIAL is not.
        op.alter_column('events', 'id', type_=sa.BigInteger(), existing_type=sa.Integer())
        op.execute("ALTER SEQUENCE IF EXISTS events_id_seq AS bigint")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE IF EXISTS events_id_seq AS integer")
        op.alter_column('events', 'id', type_=sa.Integer(), existing_type=sa.BigInteger())
    for table in ("artifacts", "exports"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_object_key'))
    for table in PURGEABLE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('purged_at')
