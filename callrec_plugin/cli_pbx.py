"""``flask callrec import | staff remap | config``: the phone system's side of callrec.

``import`` exits 0 when nothing needs attention, 1 when the summary reports something an operator
should look at (files refused, CDR rows without recordings, recordings without CDR rows, time
disagreements, originals kept), 2 for a usage error such as an unknown practice (nothing imported).
"""
import datetime as dt
import json
from urllib.parse import urlsplit, urlunsplit

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from callrec_plugin.config import DEFAULTS, SECRET_KEYS


def register(group):
    for command in (import_command, staff_group(), config_command):
        if command.name not in group.commands:
            group.add_command(command)
    return group


@click.command("import")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--cdr", "cdr_path", type=click.Path(exists=True, dir_okay=False),
              help="Asterisk CDR CSV (Master.csv) matched on uniqueid: who answered, caller name, start, disposition.")
@click.option("--cdr-timezone", default=None,
              help="Time zone of the CDR's times: UTC when cdr.conf [csv] has usegmtime=yes (Asterisk's sample), "
                   "else a zone name (default CALLREC_CDR_TIMEZONE, else CALLREC_PBX_TIMEZONE).")
@click.option("--practice", "practice_ref", help="Practice ref to file the calls under "
              "(default CALLREC_DEFAULT_PRACTICE).")
@click.option("--min-age", "min_age", default=60, show_default=True, type=click.IntRange(0),
              help="Skip files changed fewer than this many seconds ago (a call still being recorded).")
@click.option("--remove-originals", is_flag=True,
              help="Delete each plaintext original once its encrypted copy has been read back, decrypted and "
                   "matched to the original's SHA-256.")
@with_appcontext
def import_command(path, cdr_path, cdr_timezone, practice_ref, min_age, remove_originals):
    """Import a FreePBX/Asterisk monitor tree (YYYY/MM/DD/<type>-<to>-<from>-<date>-<time>-<uniqueid>.<ext>)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from callrec_plugin.ingest.freepbx_import import ImportOptions, import_tree, record_run
    from callrec_plugin.practices import UnknownPractice

    config = current_app.config
    practice_ref = practice_ref or config["CALLREC_DEFAULT_PRACTICE"]
    if not practice_ref:
        raise click.UsageError("name the practice: --practice REF (or set CALLREC_DEFAULT_PRACTICE)")
    cdr_timezone = cdr_timezone or config.get("CALLREC_CDR_TIMEZONE") or config["CALLREC_PBX_TIMEZONE"]
    try:
        ZoneInfo(cdr_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.UsageError(f"unknown time zone {cdr_timezone!r} (use UTC or a name such as Europe/London)")
    options = ImportOptions(timezone=config["CALLREC_PBX_TIMEZONE"], cdr_timezone=cdr_timezone,
                            outside_prefix=config["CALLREC_PBX_OUTSIDE_LINE_PREFIX"],
                            region=config["CALLREC_PHONE_REGION"], min_age_seconds=min_age,
                            remove_originals=remove_originals)
    try:
        summary = import_tree(path, practice_ref, cdr_path, options)
    except UnknownPractice as exc:
        raise click.UsageError(exc.reason) from None
    for line in summary.lines():
        click.echo(line)
    record_run(summary, practice_ref)
    if summary.needs_attention:
        raise SystemExit(1)


def staff_group():
    group = AppGroup("staff", help="Who handled each call: phone extensions mapped to members of staff.")

    @group.command("remap")
    @click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="Only calls from this date (UTC), e.g. 2026-11-01.")
    @click.option("--practice", "practice_ref", default=None, help="Only this practice's calls.")
    def remap(since, practice_ref):
        """Give calls stored before their extension was mapped their member of staff (callrec_staff_for_extension)."""
        from callrec_plugin.staff_mapping import remap as remap_calls

        since = since.replace(tzinfo=dt.timezone.utc) if since else None
        mapped, unmapped = remap_calls(since=since, practice_ref=practice_ref)
        click.echo(f"{mapped} calls given their member of staff; {unmapped} calls' extensions still map to nobody")

    return group


def masked(key, value):
    """A configuration value fit to print: secrets replaced by ***, a password in a URL too."""
    if value is None:
        return None
    if key in SECRET_KEYS or "SECRET" in key or "PASSWORD" in key:
        if isinstance(value, dict):
            return {name: "***" for name in value}
        return "***"
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        if parts.password:
            netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    return value


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of KEY = value lines.")
@with_appcontext
def config_command(as_json):
    """Print the effective CALLREC_* configuration (host config, then environment, then defaults), secrets masked."""
    config = current_app.config
    effective = {key: masked(key, config.get(key)) for key in sorted(set(DEFAULTS) | {
        key for key in config if key.startswith("CALLREC_")})}
    if as_json:
        click.echo(json.dumps(effective, indent=2, sort_keys=True, default=str))
        return
    for key, value in effective.items():
        click.echo(f"{key} = {json.dumps(value, default=str)}")
