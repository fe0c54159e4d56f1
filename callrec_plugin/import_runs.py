"""What the phone system still holds in plaintext: the latest import run of each folder, for the
retention page (encryption at rest in callrec does not help while the same audio sits on the PBX)."""
import sqlalchemy as sa

from callrec_plugin.models import ImportRun
from callrec_plugin.state import db_session


def plaintext_left_on_pbx(practice_ref):
    """The latest import run of each folder of the practice that left plaintext originals behind (one query)."""
    latest = (sa.select(ImportRun.root, sa.func.max(ImportRun.id).label("id"))
              .where(ImportRun.practice_ref == practice_ref).group_by(ImportRun.root).subquery())
    return db_session().scalars(
        sa.select(ImportRun).join(latest, ImportRun.id == latest.c.id)
        .where(ImportRun.originals_left > 0).order_by(ImportRun.root)
    ).all()
