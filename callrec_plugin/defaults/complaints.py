"""Built-in answer to the host's complaint events: a closed complaint no longer holds its calls."""
from callrec_plugin.hooks import hookimpl


@hookimpl(trylast=True)
def callrec_complaint_closed(complaint_ref):
    from callrec_plugin.holds import complaint_closed

    complaint_closed(complaint_ref)
