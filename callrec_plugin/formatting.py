"""How calls are shown: shared by the panels and pages (registered as Jinja filters)."""
import re

from jinja2 import pass_context
from markupsafe import Markup, escape

DIRECTION_LABELS = {"inbound": "Incoming", "outbound": "Outgoing", "internal": "Internal"}


def duration_text(seconds):
    """12.9 -> '0:12': whole seconds truncated, as the browser's player shows a duration, so a page and the
    player on it never disagree by a second (player.js's time readout truncates the same way)."""
    whole = int(max(seconds or 0, 0))
    return f"{whole // 60}:{whole % 60:02d}"


def direction_label(direction):
    return DIRECTION_LABELS.get(direction, direction)


def when_text(moment):
    return moment.strftime("%d %b %Y %H:%M")


def call_label(started_at):
    """A call as a person names it: by when it was made (its id is for links only)."""
    return f"Call on {when_text(started_at)}" if started_at else "A call no longer kept"


def days_left_text(days):
    if days is None:
        return ""
    if days == 0:
        return "Due for deletion"
    return f"Deleted in {days} day{'s' if days != 1 else ''}"


# Characters that change how the text around them is shown without being seen themselves. The bidi
# controls (U+202A-202E, U+2066-2069, U+200E/200F, U+061C) can show "Rita\u202eecnanif" as "Ritafinance"
# reversed, so a staff name can be disguised as another; zero-width and other invisible format
# characters hide text; C0 and C1 controls. Zero-width (non-)joiners U+200C/U+200D are left alone:
# Persian, Indic scripts and emoji need them.
INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u061c\u115f\u1160\u180e\u200b\u200e\u200f"
    "\u202a-\u202e\u2060-\u206f\u3164\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]")


def visible_text(value):
    """``value`` with every invisible control character shown as ``[U+202E]`` (a Markup stays Markup:
    the replacement holds no HTML). What is stored is never changed: this is for display only."""
    if not isinstance(value, str) or not INVISIBLE.search(value):
        return value
    shown = INVISIBLE.sub(lambda match: f"[U+{ord(match.group()):04X}]", str(value))
    return Markup(shown) if isinstance(value, Markup) else shown


def lines_text(value):
    """A note as its writer typed it: each line break shown (``<br>``), the text escaped. For text a person
    wrote in a textarea (notes, reasons); not for attributes, where a ``<br>`` would show as such."""
    if value is None:
        return ""
    lines = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markup("<br>").join(escape(visible_text(line)) for line in lines)


def install_display_filter(app):
    """Every ``{{ … }}`` in callrec's own templates (``callrec/…``) goes through :func:`visible_text`, so no
    page, panel or slot can forget it. Jinja's ``finalize`` is environment-wide: the host's own
    finalize, if any, still runs first, and the host's templates are left as they are."""
    env = app.jinja_env
    host = env.finalize
    host_kind = getattr(getattr(host, "jinja_pass_arg", None), "name", None)  # how Jinja calls it

    @pass_context
    def callrec_finalize(context, value):
        if host is not None:
            first = {"context": context, "eval_context": context.eval_ctx,
                     "environment": context.environment}.get(host_kind)
            value = host(value) if first is None else host(first, value)
        if (context.name or "").startswith("callrec/"):
            return visible_text(value)
        return value

    env.finalize = callrec_finalize


FILTERS = {
    "callrec_duration": duration_text,
    "callrec_direction": direction_label,
    "callrec_when": when_text,
    "callrec_days_left": days_left_text,
    "callrec_visible": visible_text,  # for a host template that shows callrec's data itself
    "callrec_lines": lines_text,  # a typed note with its line breaks
}
