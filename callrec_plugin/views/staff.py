"""Phone extensions on the practice's calls that map to no member of staff (owner and manager).

A call whose extension maps to nobody cannot be spot-checked against anyone; this page says which
extensions to add to the host's staff records, then ``flask callrec staff remap`` fills the calls in.
"""
from flask import render_template

from callrec_plugin import audit
from callrec_plugin.identity import current_actor
from callrec_plugin.roles import Action
from callrec_plugin.staff_mapping import unmapped_extensions
from callrec_plugin.state import db_session
from callrec_plugin.views import allowed_or_403, blueprint, login_required

ROUTES = {"callrec.unmapped_extensions_page": Action.VIEW_STAFF_MAPPING}


@blueprint.route("/staff/unmapped")
@login_required
def unmapped_extensions_page():
    actor = current_actor()
    allowed_or_403(actor, Action.VIEW_STAFF_MAPPING, object_type="staff_mapping", object_id="unmapped")
    rows = unmapped_extensions(actor.practice_ref)
    audit.record("staff_mapping_viewed", "done", actor=actor, object_type="staff_mapping", object_id="unmapped",
                 reason=f"{len(rows)} unmapped extensions listed")
    db_session().commit()
    return render_template("callrec/unmapped_extensions.html", rows=rows)
