"""Built-in listener: a law-enforcement hold placed or released changes a call's training-library membership."""
from callrec_plugin import training_library
from callrec_plugin.hooks import hookimpl
from callrec_plugin.state import db_session


@hookimpl(trylast=True)
def callrec_hold_changed(recording_id, hold_id, change):
    # The hold is committed before this event; the membership change gets its own transaction.
    training_library.hold_changed(recording_id)
    db_session().commit()
