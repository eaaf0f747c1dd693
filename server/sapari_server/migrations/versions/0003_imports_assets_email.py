"""imports, asset edits and email notification (clip origin, users' email opt-in)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 05:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=320), nullable=True))
        # Existing users are opted out: nobody gets mail they did not ask for.
        batch_op.add_column(sa.Column('notify_email', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('clips', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('source_clip_id', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_clips_source_clip_id_clips'), 'clips',
                                    ['source_clip_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('clips', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_clips_source_clip_id_clips'), type_='foreignkey')
        batch_op.drop_column('source_clip_id')
        batch_op.drop_column('origin')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('notify_email')
        batch_op.drop_column('email')
