"""How calls are shown: shared by the panels and pages (registered as Jinja filters)."""

DIRECTION_LABELS = {"inbound": "Incoming", "outbound": "Outgoing", "internal": "Internal"}


def duration_text(seconds):
    whole = int(round(seconds or 0))
    return f"{whole // 60}:{whole % 60:02d}"


def direction_label(direction):
    return DIRECTION_LABELS.get(direction, direction)


def when_text(moment):
    return moment.strftime("%d %b %Y %H:%M")


def days_left_text(days):
    if days is None:
        return ""
    if days == 0:
        return "Due for deletion"
    return f"Deleted in {days} day{'s' if days != 1 else ''}"


FILTERS = {
    "callrec_duration": duration_text,
    "callrec_direction": direction_label,
    "callrec_when": when_text,
    "callrec_days_left": days_left_text,
}
