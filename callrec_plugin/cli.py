"""``flask callrec …``: the command group added to the host's CLI by init_app."""
import click
from flask import current_app
from flask.cli import AppGroup

from callrec_plugin import audit, checkpoints, cli_call_log, cli_jobs, cli_monitoring, cli_pbx, migrate
from callrec_plugin.state import get_state
from callrec_plugin.manager import describe_plugins
from callrec_plugin.storage_migration import storage_group


def _engine():
    return get_state().db.engine


def make_cli():
    """A fresh group per app, so plugins' commands (callrec_register_commands) stay with their app."""
    group = AppGroup("callrec", help="callrec: call recordings, retention and audit.")
    group.add_command(db_group())
    group.add_command(plugins_command)
    group.add_command(audit_group())
    group.add_command(keys_group())
    cli_pbx.register(group)  # import, staff remap, config
    cli_jobs.register(group)
    cli_monitoring.register(group)
    cli_call_log.register(group)
    group.add_command(storage_group())
    return group


def db_group():
    db = AppGroup("db", help="callrec's database migrations (own version table alembic_version_callrec).")

    @db.command("upgrade")
    @click.argument("revision", default="head")
    def upgrade(revision):
        """Create or upgrade callrec's tables."""
        migrate.upgrade(_engine(), revision)
        click.echo(f"callrec database at revision {migrate.current_revision(_engine())}")

    @db.command("downgrade")
    @click.argument("revision")
    def downgrade(revision):
        """Downgrade callrec's tables to REVISION ("base" removes them)."""
        migrate.downgrade(_engine(), revision)
        click.echo(f"callrec database at revision {migrate.current_revision(_engine())}")

    @db.command("current")
    def current():
        """Show the revision the database is at and the newest one shipped."""
        click.echo(f"current: {migrate.current_revision(_engine())}  head: {migrate.head_revision()}")

    return db


@click.command("plugins")
def plugins_command():
    """List loaded plugins and the hooks each implements."""
    state = get_state()
    state.pm.check_pending()  # a misspelt hook in any plugin stops here, naming it
    for row in describe_plugins(state.pm):
        click.echo(f"{row['name']}: {', '.join(row['hooks']) or '(no hooks)'}")
    for name in state.failed_plugins:
        click.echo(f"{name}: FAILED TO LOAD (see the log)")


def audit_group():
    group = AppGroup("audit", help="The tamper-evident audit trail.")

    @group.command("verify")
    @click.option("--checkpoint", "checkpoint_path", type=click.Path(dir_okay=False),
                  help="A signed checkpoint file: also detects rows deleted from the end.")
    def verify(checkpoint_path):
        """Recompute every link of the audit chain; exit 1 and name the first bad seq."""
        session = get_state().session
        if checkpoint_path:
            key = _signing_key()
            try:
                signed = checkpoints.read_checkpoint(checkpoint_path, key)
            except checkpoints.CheckpointError as exc:
                raise click.ClickException(str(exc)) from None
            result = audit.verify_against_checkpoint(session, signed)
        else:
            result = audit.verify(session)
        if result.ok:
            click.echo(f"audit chain intact: {result.checked} events, head seq {result.head_seq}")
            return
        click.echo(f"audit chain BROKEN at seq {result.first_bad_seq}: {result.problem}", err=True)
        raise SystemExit(1)

    @group.command("checkpoint")
    @click.argument("path", type=click.Path(dir_okay=False))
    def checkpoint(path):
        """Verify the chain, then write a signed (seq, head hash) checkpoint to PATH."""
        key = _signing_key()
        result = audit.verify(get_state().session)
        if not result.ok:
            raise click.ClickException(f"not signing a broken chain (first bad seq {result.first_bad_seq})")
        checkpoints.write_checkpoint(path, checkpoints.make_checkpoint(key, result.head_seq, result.head_hash))
        click.echo(f"checkpoint written to {path}: seq {result.head_seq}, hash {result.head_hash}")

    @group.command("restrict")
    @click.argument("role")
    def restrict(role):
        """PostgreSQL: let ROLE (the application's login) only SELECT and INSERT audit events."""
        from callrec_plugin.audit_privileges import PrivilegeError, restrict_audit_to_append_only

        try:
            restrict_audit_to_append_only(_engine(), role)
        except PrivilegeError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{role} may now only read and append callrec_audit_events")

    @group.command("init-key")
    @click.argument("path", type=click.Path(dir_okay=False))
    def init_key(path):
        """Create an Ed25519 signing key for checkpoints at PATH (set CALLREC_AUDIT_SIGNING_KEY_FILE to it)."""
        try:
            checkpoints.generate_signing_key(path)
        except FileExistsError:
            raise click.ClickException(f"{path} exists already; not overwriting a signing key") from None
        click.echo(f"audit signing key written to {path}")

    return group


def _signing_key():
    try:
        return checkpoints.load_signing_key(current_app.config["CALLREC_AUDIT_SIGNING_KEY_FILE"])
    except checkpoints.CheckpointError as exc:
        raise click.ClickException(str(exc)) from None


def _key_ring():
    from callrec_plugin.keyring import KeyRing, KeyRingError

    try:
        return KeyRing.from_config(current_app.config)
    except KeyRingError as exc:
        raise click.ClickException(str(exc)) from None


def keys_group():
    group = AppGroup("keys", help="Key-encryption keys: status, a new key, rotation, retiring an old key.")

    @group.command("status")
    def status():
        """Show the keys in the ring and how many recordings each one wraps."""
        from callrec_plugin.rotation import key_usage

        ring = _key_ring()
        usage = key_usage(get_state().session)
        for key_id in ring.ids:
            marker = " (newest: new recordings use it)" if key_id == ring.newest_id else ""
            click.echo(f"{key_id}: {usage.pop(key_id, 0)} recordings{marker}")
        for key_id, count in sorted(usage.items()):
            click.echo(f"{key_id}: {count} recordings  MISSING FROM THE KEY RING: they cannot be decrypted")
        stale = sum(count for key_id, count in key_usage(get_state().session).items() if key_id != ring.newest_id)
        click.echo(f"{stale} recordings to re-wrap (flask callrec keys rotate)" if stale else "all on the newest key")

    @group.command("new")
    def new():
        """Add a new newest key to CALLREC_KEY_FILE (then run keys rotate)."""
        from callrec_plugin.keyring import add_key_to_file

        path = current_app.config["CALLREC_KEY_FILE"]
        if not path:
            raise click.ClickException("CALLREC_KEY_FILE is not set; add the key to your key store by hand")
        click.echo(f"new key {add_key_to_file(path)} added to {path}")

    @group.command("rotate")
    @click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
    def rotate(batch_size):
        """Re-wrap every data key with the newest key, in batches; safe to stop and run again."""
        from callrec_plugin.rotation import rotate as rotate_keys

        ring = _key_ring()

        def progress(done, total):
            click.echo(f"re-wrapped {done} of {total}")

        done = rotate_keys(get_state().session, ring, batch_size=batch_size, progress=progress)
        click.echo(f"done: {done} data keys re-wrapped; all recordings are on key {ring.newest_id}")

    @group.command("retire")
    @click.argument("key_id")
    def retire(key_id):
        """Destroy an old key-encryption key once nothing live is wrapped by it (shreds old backups' calls)."""
        from callrec_plugin.key_retirement import RetireError, retire_key

        try:
            retire_key(get_state().session, current_app.config["CALLREC_KEY_FILE"], key_id, _key_ring())
        except RetireError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"key {key_id} removed from {current_app.config['CALLREC_KEY_FILE']}: calls in backups whose "
                   "data keys it wrapped can no longer be decrypted")

    return group
