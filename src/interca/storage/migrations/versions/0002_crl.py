"""The CA's CRL: number, DER and issue time.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import interca.storage.columns

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("crl_number", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("crl_der", sa.LargeBinary(), nullable=True))
        batch.add_column(
            sa.Column("crl_issued_at", interca.storage.columns.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("crl_issued_at")
        batch.drop_column("crl_der")
        batch.drop_column("crl_number")
