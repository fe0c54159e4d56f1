"""Revision 0012 keeps the names of the people who placed, approved and released holds and requested
exports; for rows written before it, the names come from the audit trail, which recorded them."""
import datetime as dt

import sqlalchemy as sa

from callrec_plugin import migrate
from tests.test_migrations import fresh_engine

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.timezone.utc)


def _row(table, **given):
    """``given`` plus a plain value for every other column that must have one."""
    values = dict(given)
    for column in table.columns:
        if column.name in values or column.nullable or column.server_default is not None or column.autoincrement is True:
            continue
        python_type = getattr(column.type, "impl", column.type).python_type
        values[column.name] = {str: "x", int: 1, float: 1.0, bool: False, bytes: b"x",
                               dt.datetime: NOW, dt.date: NOW.date()}[python_type]
    return values


def test_names_are_filled_from_the_audit_trail(tmp_path, database_url):
    engine = fresh_engine(tmp_path, database_url)
    migrate.upgrade(engine, "0011")
    tables = sa.MetaData()
    tables.reflect(engine, only=["callrec_recordings", "callrec_holds", "callrec_audit_events", "callrec_exports"])
    recordings, holds_, events, exports = (tables.tables[name] for name in (
        "callrec_recordings", "callrec_holds", "callrec_audit_events", "callrec_exports"))
    with engine.begin() as connection:
        connection.execute(recordings.insert().values(_row(recordings, id="rec1", practice_ref="pA")))
        connection.execute(holds_.insert().values(_row(
            holds_, id=7, recording_id="rec1", practice_ref="pA", kind="regulator", placed_by_ref="staff-3",
            release_requested_by_ref="staff-9", placed_at=NOW)))
        connection.execute(exports.insert().values(_row(
            exports, id="exp1", practice_ref="pA", kind="subject_access", requested_by_ref="staff-3")))
        for seq, (action, ref, name) in enumerate([("hold_placed", "staff-3", "Rita Old Name"),
                                                   ("play", "staff-3", "Rita Reception"),
                                                   ("hold_release_requested", "staff-9", "Mo Manager")], 1):
            connection.execute(events.insert().values(_row(
                events, seq=seq, occurred_at=NOW, actor_ref=ref, actor_name=name, practice_ref="pA", action=action,
                object_type="hold" if action.startswith("hold") else "recording",
                object_id="7" if action.startswith("hold") else "rec1", outcome="done", roles="", prev_hash="0" * 64,
                hash=f"{seq:064d}")))
    migrate.upgrade(engine, "0012")
    with engine.connect() as connection:
        hold = connection.execute(sa.text("SELECT placed_by_name, release_requested_by_name, released_by_name "
                                          "FROM callrec_holds WHERE id = 7")).one()
        export_name = connection.execute(sa.text("SELECT requested_by_name FROM callrec_exports")).scalar_one()
    # The hold keeps the name its event recorded; the export the person's latest name.
    assert tuple(hold) == ("Rita Old Name", "Mo Manager", None)
    assert export_name == "Rita Reception"
    migrate.downgrade(engine, "0011")
    assert "placed_by_name" not in {c["name"] for c in sa.inspect(engine).get_columns("callrec_holds")}
