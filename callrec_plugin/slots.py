"""The Jinja globals through which host pages receive callrec content.

    {{ callrec_slot("patient_panel", patient_ref=patient.id) }}

A slot named ``x`` calls the hook ``callrec_slot_x`` with the refs given (missing ones as None) and
the current user, and joins the answers in pluggy's call order. An unknown slot gives "".
"""
from markupsafe import Markup, escape

from callrec_plugin.state import get_state
from callrec_plugin.identity import current_actor

SLOT_PREFIX = "callrec_slot_"


def slot_names(pm):
    """The slot names the installed hookspecs define, e.g. {"patient_panel", "complaint_panel", "head"}."""
    return {name[len(SLOT_PREFIX):] for name in vars(pm.hook) if name.startswith(SLOT_PREFIX)}


def callrec_slot(name, **refs):
    pm = get_state().pm
    if name not in slot_names(pm):
        return Markup("")
    caller = getattr(pm.hook, SLOT_PREFIX + name)
    arguments = {arg: refs.get(arg) for arg in caller.spec.argnames}
    if "user" in arguments:
        arguments["user"] = current_actor().user
    answers = caller(**arguments)
    return Markup("").join(answer if isinstance(answer, Markup) else escape(answer) for answer in answers if answer)


def callrec_menu_links():
    """Every plugin's menu links for the current user, as [{"href", "label"}]."""
    pm = get_state().pm
    links = []
    for answer in pm.hook.callrec_menu_links(user=current_actor().user):
        links.extend(answer or ())
    return links
