"""What the phone system's CDR said about a call, for its page: the caller's name as presented, the
userfield and accountcode, and the other recordings of the same call (one linkedid: a transfer's legs).
They are call facts (visibility.Field.CALL_NUMBER): whoever may see a call's number may see them."""

from callrec_plugin import visibility
from callrec_plugin.ingest.numbers import number_label
from callrec_plugin.models import Recording
from callrec_plugin.scoping import recordings_in
from callrec_plugin.state import db_session


def pbx_facts(actor, recording):
    """{"caller_name", "userfield", "accountcode", "number", "same_call": [Recording]} or None if hidden."""
    if not visibility.may_see(actor, visibility.Field.CALL_NUMBER):
        return None
    same_call = []
    if recording.linkedid:
        same_call = db_session().scalars(
            recordings_in(actor.practice_ref)
            .where(Recording.linkedid == recording.linkedid, Recording.id != recording.id)
            .order_by(Recording.started_at).limit(20)
        ).all()
    return {"caller_name": recording.caller_name, "userfield": recording.cdr_userfield,
            "accountcode": recording.accountcode, "number": number_label(recording.external_number),
            "same_call": same_call}
