"""``flask callrec rematch``: after the host adds a number to a patient, propose that patient's past
calls from the number for a person to confirm on the call log page (never linked silently)."""
import datetime as dt

import click
from flask import current_app
from flask.cli import with_appcontext


def register(group):
    if rematch_command.name not in group.commands:
        group.add_command(rematch_command)
    return group


@click.command("rematch")
@click.option("--number", default=None, help="Only calls from this number (any form, read in CALLREC_PHONE_REGION).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Only calls from this date (UTC), e.g. 2026-11-01.")
@click.option("--practice", "practice_ref", default=None,
              help="The practice whose calls to look at (default CALLREC_DEFAULT_PRACTICE).")
@with_appcontext
def rematch_command(number, since, practice_ref):
    """Propose past unmatched calls whose number is now on a patient's record, for one-click confirmation."""
    from callrec_plugin.ingest.numbers import InvalidNumber, normalise
    from callrec_plugin.patient_matching import propose_rematches
    from callrec_plugin.practices import UnknownPractice, check_practice

    practice_ref = practice_ref or current_app.config["CALLREC_DEFAULT_PRACTICE"]
    if not practice_ref:
        raise click.UsageError("name the practice: --practice REF (or set CALLREC_DEFAULT_PRACTICE)")
    try:
        check_practice(practice_ref)
    except UnknownPractice as exc:
        raise click.UsageError(exc.reason) from None
    if number is not None:
        try:
            number = normalise(number, current_app.config["CALLREC_PHONE_REGION"])
        except InvalidNumber as exc:
            raise click.UsageError(f"--number {number!r} is not a phone number: {exc}") from None
        if not number.startswith("+"):
            raise click.UsageError("--number must be a whole outside number (withheld numbers cannot be matched)")
    since = since.replace(tzinfo=dt.timezone.utc) if since else None
    proposals = propose_rematches(practice_ref, number=number, since=since)
    click.echo(f"{len(proposals)} call{'s' if len(proposals) != 1 else ''} proposed for a person to confirm "
               "on the call log page (nothing was linked)")
