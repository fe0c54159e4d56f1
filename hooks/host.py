"""Hooks that put callrec content into the host's pages (called through ``callrec_slot``).

Each slot hook returns Markup (or a str that is escaped) or None; callrec joins the answers of all
plugins in order, so several plugins can add to one slot.
"""
from . import hookspec


@hookspec
def callrec_slot_patient_panel(patient_ref, user):
    """Return HTML for the calls panel of one patient's record, or None to add nothing."""


@hookspec
def callrec_slot_complaint_panel(complaint_ref, patient_ref, user):
    """Return HTML for the calls panel of one complaint (patient_ref may be None), or None."""


@hookspec
def callrec_slot_head():
    """Return HTML for the page head (stylesheet and script tags), or None."""


@hookspec
def callrec_menu_links(user):
    """Return a list of {"href": str, "label": str} for the host's menu, or None."""
