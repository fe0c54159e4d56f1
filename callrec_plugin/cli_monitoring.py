"""``flask callrec spot-checks draw [--month YYYY-MM] [--practice REF]``: the monthly draw, by hand.

The scheduler draws last month on the first of each month (``spot_checks.draw_due``); this command
does the same at any time, or for a given month. A month already drawn is left as it was.
"""
import click
from flask.cli import AppGroup

from callrec_plugin import clock, spot_checks
from callrec_plugin.practice_settings import settings_for
from callrec_plugin.state import db_session


def register(group):
    """Add the ``spot-checks`` group to the ``flask callrec`` click group."""
    if "spot-checks" not in group.commands:
        group.add_command(spot_checks_group())
    return group


def spot_checks_group():
    spot = AppGroup("spot-checks", help="Monthly spot checks: the random sample of each member of staff's calls.")

    @spot.command("draw")
    @click.option("--month", help="Month of the calls to sample, YYYY-MM (default: last month, practice time).")
    @click.option("--practice", "practice_ref", help="Only this practice (default: every practice with calls).")
    def draw(month, practice_ref):
        """Draw the month's spot checks (reproducible: the seed is recorded with the draw)."""
        now = clock.now()
        practices = [practice_ref] if practice_ref else sorted(spot_checks.practices_with_recent_calls(now))
        if month:
            try:
                spot_checks.parse_month(month)
            except spot_checks.SpotCheckError as error:
                raise click.BadParameter(str(error), param_hint="--month") from None
        if not practices:
            click.echo("No practice has calls in the last two months: nothing to draw.")
        for ref in practices:
            wanted = month or spot_checks.previous_month(now, settings_for(ref).zone)
            try:
                record, made = spot_checks.draw(ref, wanted)
            except spot_checks.SpotCheckError as error:
                db_session().rollback()
                raise click.ClickException(f"{ref}: {error}") from None
            db_session().commit()
            checks = spot_checks.checks_of(record)
            staff = len({check.staff_user_ref for check in checks})
            if made:
                click.echo(f"{ref} {wanted}: drew {len(checks)} calls of {staff} members of staff "
                           f"({spot_checks.describe_plan(record)}; seed {record.seed})")
            else:
                click.echo(f"{ref} {wanted}: already drawn on {record.drawn_at:%Y-%m-%d %H:%M} UTC "
                           f"({len(checks)} calls; seed {record.seed})")

    return spot
