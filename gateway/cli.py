"""The ``xtreemgate`` command: serve, check the config, migrate, manage users, keys, tokens."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.config import ENV_CONFIG_PATH, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from gateway.runtime import Runtime


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj.get("config"))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _runtime(ctx: click.Context, *, with_backends: bool = False) -> Runtime:
    from backends.contracts.registry import UnknownBackend
    from backends.store import migrate
    from gateway.runtime import build_runtime

    try:
        rt = build_runtime(_settings(ctx), with_backends=with_backends)
    except UnknownBackend as exc:
        raise click.ClickException(str(exc)) from exc
    if not migrate.is_current(rt.db.engine):
        raise click.ClickException(
            f"the database at {rt.settings.database_url} is at schema "
            f"{migrate.current_revision(rt.db.engine) or '(empty)'}, this version needs "
            f"{migrate.head_revision()}: run 'xtreemgate db upgrade'"
        )
    return rt


@click.group()
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    envvar=ENV_CONFIG_PATH,
    help="TOML config file (default: ./xtreemgate.toml if present, else built-in defaults).",
)
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """xtreemgate: a standards-based grid and cloud gateway."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    if config:
        os.environ[ENV_CONFIG_PATH] = config  # server workers read the same file


@main.command()
@click.option("--host", help="Listen address (server.host).")
@click.option("--port", type=int, help="Listen port (server.port).")
@click.option("--workers", type=int, help="Worker processes (server.workers).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the gateway with uvicorn."""
    import uvicorn

    for key, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"XTREEMGATE_SERVER__{key}"] = str(value)
    settings = _settings(ctx)
    _runtime(ctx, with_backends=True).close()  # fails early: stale schema, unknown backend
    url = settings.public_url
    click.echo(
        f"xtreemgate listening on http://{settings.server.host}:{settings.server.port} "
        f"(state in {settings.state_path})\n"
        f"  health:   curl {url}/healthz\n"
        f"  API docs: {url}/ui/\n"
        f"  a user:   xtreemgate user add alice\n"
        f"  a token:  TOKEN=$(xtreemgate token issue alice)\n"
        f'  use it:   curl -H "Authorization: Bearer $TOKEN" {url}/api/v1/whoami',
        err=True,
    )
    uvicorn.run(
        "gateway.app:create_asgi",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        log_config=None,
        access_log=False,
        # the app names itself (OCCI requires "Server: xtreemgate/<v> OCCI/1.2"); uvicorn's
        # own "server: uvicorn" would make two Server headers
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.server.forwarded_allow_ips,
    )


@main.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate the config and try every configured backend and service."""
    from backends.contracts import registry
    from backends.store import migrate
    from gateway.runtime import KINDS, build_runtime, load_backend

    settings = _settings(ctx)
    click.echo(f"configuration valid; database {settings.database_url}")
    rt = build_runtime(settings, with_backends=False)
    failures = 0

    def report(name: str, ok: bool, detail: str) -> None:
        nonlocal failures
        failures += not ok
        click.echo(f"  {name:<10} {'reachable' if ok else 'NOT REACHABLE':<14} {detail}")

    try:
        rt.db.ping()
        current, head = migrate.current_revision(rt.db.engine), migrate.head_revision()
        report(
            "database",
            current == head,
            f"schema {current or '(empty)'}, code needs {head}"
            + ("" if current == head else ": run 'xtreemgate db upgrade'"),
        )
    except Exception as exc:
        report("database", False, str(exc))
    for kind in KINDS:
        try:
            backend = rt.backends[kind] = load_backend(settings, rt.db, kind, rt.directory)
            health = backend.health()
            report(kind, health.ok, f"{kind}.{backend.name}: {health.detail}")
        except registry.UnknownBackend as exc:
            report(kind, False, str(exc))
        except Exception as exc:
            report(kind, False, f"{kind}: {exc}")
    if rt.directory is not None:
        health = rt.directory.health()
        report("ldap", health.ok, health.detail)
    negotiate = next((a for a in rt.chain.authenticators if a.mechanism == "negotiate"), None)
    if negotiate is not None:
        health = negotiate.acceptor.health()
        report("negotiate", health.ok, health.detail)
    if rt.saml is not None:  # federation metadata fetched and verified now, in the open
        rt.saml.federations.load_all()
        health = rt.saml.health()
        report("saml", health.ok, health.detail)
    rt.close()
    if failures:
        raise click.ClickException(f"{failures} check(s) failed")


@main.group()
def db() -> None:
    """The SQL store."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or migrate the database schema to this version's head."""
    from backends.store import make_engine, migrate

    settings = _settings(ctx)
    make_engine(settings.database_url).dispose()  # creates the SQLite folder
    migrate.upgrade(settings.database_url)
    click.echo(f"database {settings.database_url} at schema {migrate.head_revision()}")


@main.group()
def user() -> None:
    """Local users (the embedded identity source)."""


@user.command("add")
@click.argument("username")
@click.option("--display-name", default="")
@click.option("--email", default="")
@click.option("--site-admin", is_flag=True, help="May administer the whole gateway.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_add(
    ctx: click.Context,
    username: str,
    display_name: str,
    email: str,
    site_admin: bool,
    password_stdin: bool,
) -> None:
    """Create a local user with a password."""
    from gateway.auth.users import UserError, add_user

    password = _read_password(password_stdin)
    rt = _runtime(ctx)
    try:
        add_user(
            rt.db,
            username,
            password,
            display_name=display_name,
            email=email,
            site_admin=site_admin,
        )
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        rt.close()
    click.echo(f"user {username} added", err=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@user.command("list")
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """The local users, one a line: name, state, role, display name."""
    from gateway.auth.users import list_users

    rt = _runtime(ctx)
    try:
        for found in list_users(rt.db):
            state = "disabled" if found.disabled else "enabled"
            role = "site-admin" if found.site_admin else "user"
            click.echo(f"{found.username:<24} {state:<9} {role:<10} {found.display_name}")
    finally:
        rt.close()


def _update_user(ctx: click.Context, username: str, **change: Any) -> None:
    from gateway.auth.users import UserError, update_user

    rt = _runtime(ctx)
    try:
        update_user(rt.db, username, **change)
    except UserError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        rt.close()


@user.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def user_passwd(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a local user's password."""
    _update_user(ctx, username, password=_read_password(password_stdin))
    click.echo(f"password of {username} changed", err=True)


@user.command("disable")
@click.argument("username")
@click.pass_context
def user_disable(ctx: click.Context, username: str) -> None:
    """Refuse the user's password from now on (cached logins end within
    auth.basic_cache_seconds; issued tokens run out at their expiry)."""
    _update_user(ctx, username, disabled=True)
    click.echo(f"user {username} disabled", err=True)


@user.command("enable")
@click.argument("username")
@click.pass_context
def user_enable(ctx: click.Context, username: str) -> None:
    """Accept the user's password again."""
    _update_user(ctx, username, disabled=False)
    click.echo(f"user {username} enabled", err=True)


@main.group()
def token() -> None:
    """Bearer tokens."""


@token.command("issue")
@click.argument("username")
@click.option("--audience", help="Default: auth.tokens.audience.")
@click.option("--lifetime", type=int, help="Seconds (capped by auth.tokens.lifetime).")
@click.pass_context
def token_issue(
    ctx: click.Context, username: str, audience: str | None, lifetime: int | None
) -> None:
    """Print a signed token for a local user."""
    from gateway.auth.users import get_user

    rt = _runtime(ctx)
    try:
        found = get_user(rt.db, username)
        if found is None or found.disabled:
            raise click.ClickException(f"no enabled local user {username!r}")
        rt.keyring.ensure()
        claims: dict[str, Any] = {"auth": "cli"}
        if found.display_name:
            claims["name"] = found.display_name
        if found.site_admin:
            claims["site_admin"] = True
        issued, _ = rt.tokens.issue(username, audience=audience, lifetime=lifetime, claims=claims)
    finally:
        rt.close()
    click.echo(issued)


@user.command("wss-key")
@click.argument("username")
@click.pass_context
def user_wss_key(ctx: click.Context, username: str) -> None:
    """The user's WS-Security key: the password of PasswordDigest UsernameTokens.

    Digest tokens need a secret the gateway knows in clear, and it never stores login
    passwords; this key is derived from a site key in the database instead."""
    from gateway.auth.users import get_user
    from gateway.auth.wssecurity import WSSecurityAuthenticator

    rt = _runtime(ctx)
    try:
        if get_user(rt.db, username) is None:
            raise click.ClickException(f"no local user {username!r}")
        click.echo(WSSecurityAuthenticator(rt.db, rt.settings.auth.wss).digest_key(username))
    finally:
        rt.close()


@main.group()
def keys() -> None:
    """The token-signing key ring."""


@keys.command("rotate")
@click.option("--publish-ahead", type=int, help="Seconds to publish before signing.")
@click.pass_context
def keys_rotate(ctx: click.Context, publish_ahead: int | None) -> None:
    """Add a new signing key; older ones retire after their last token expires."""
    rt = _runtime(ctx)
    try:
        rt.keyring.ensure()
        kid = rt.keyring.rotate(publish_ahead)
    finally:
        rt.close()
    click.echo(kid)


@keys.command("list")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """The keys in the ring: signing, published (about to sign), retiring."""
    rt = _runtime(ctx)
    try:
        for key in rt.keyring.describe():
            click.echo(
                f"{key['kid']}  gen {key['generation']:<3} {key['algorithm']:<6} "
                f"{key['state']:<9} from {key['not_before']} until {key['retire_after'] or '-'}"
            )
    finally:
        rt.close()


# -- storage volumes -----------------------------------------------------------------------
@main.group()
def volume() -> None:
    """Storage volumes owned by VOs (the configured storage backend)."""


def _storage(ctx: click.Context) -> tuple[Any, Any]:
    from backends.contracts.registry import UnknownBackend
    from gateway.runtime import load_backend, open_database

    settings = _settings(ctx)
    db = open_database(settings)
    try:
        return load_backend(settings, db, "storage"), db
    except UnknownBackend as exc:
        db.dispose()
        raise click.ClickException(str(exc)) from exc


def _require_current_schema(db: Any) -> None:
    from backends.store import migrate

    if not migrate.is_current(db.engine):
        raise click.ClickException(
            f"the database is at schema {migrate.current_revision(db.engine) or '(empty)'}, "
            f"this version needs {migrate.head_revision()}: run 'xtreemgate db upgrade'"
        )


def _on_storage(ctx: click.Context, work: Any, *, with_vo: bool = False) -> None:
    """Run ``work(storage)`` (``work(storage, vo_backend)`` with ``with_vo``); a backend's
    refusal becomes the command's error message."""
    from backends.contracts.interfaces import BackendError
    from backends.contracts.registry import UnknownBackend
    from gateway.runtime import load_backend

    storage, db = _storage(ctx)
    vo_backend = None
    try:
        if with_vo:
            _require_current_schema(db)  # the VO backend's tables
            vo_backend = load_backend(_settings(ctx), db, "vo")
            work(storage, vo_backend)
        else:
            work(storage)
    except (BackendError, UnknownBackend) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if vo_backend is not None:
            vo_backend.close()
        storage.close()
        db.dispose()


def _volume_line(found: Any) -> str:
    quota = "unlimited" if found.quota_bytes is None else str(found.quota_bytes)
    return f"{found.name:<24} {found.vo:<16} {found.used_bytes:>14} {quota:>14}  {found.url}"


@volume.command("create")
@click.argument("name")
@click.option("--vo", required=True, help="The VO that owns the volume.")
@click.option("--quota", type=click.IntRange(min=1), help="Quota in bytes (default: none).")
@click.option(
    "--owner",
    default="",
    help="Who the volume is registered into its VO by (default: the VO's first manager).",
)
@click.pass_context
def volume_create(ctx: click.Context, name: str, vo: str, quota: int | None, owner: str) -> None:
    """Create volume NAME owned by a VO, and register it into the VO (so the VO's members
    may stage from and to it)."""
    from gateway.storage import ownership

    def create(storage: Any, vo_backend: Any) -> None:
        ownership.check_vo(vo_backend, vo)
        registrar = owner or _first_manager(vo_backend, vo)
        made = ownership.create(storage, vo_backend, name, vo, quota, registrar)
        click.echo(_volume_line(made))

    _on_storage(ctx, create, with_vo=True)


def _first_manager(vo_backend: Any, vo: str) -> str:
    from gateway.storage import ownership

    vos = ownership.registry(vo_backend)
    if vos is None:
        return "site"  # nothing is registered: the VO backend keeps no owners
    managers = sorted(vos.get_vo(vo).get("managers", []))
    if not managers:
        raise click.ClickException(
            f"VO {vo} has no managers: name the volume's owner with --owner PRINCIPAL"
        )
    return managers[0]


@volume.command("list")
@click.option("--vo", default=None, help="Only this VO's volumes.")
@click.pass_context
def volume_list(ctx: click.Context, vo: str | None) -> None:
    """The volumes, one a line: name, VO, used bytes, quota, URL."""
    _on_storage(ctx, lambda s: [click.echo(_volume_line(v)) for v in s.list_volumes(vo)])


@volume.command("resize")
@click.argument("name")
@click.option("--quota", type=click.IntRange(min=1), help="New quota in bytes.")
@click.option("--unlimited", is_flag=True, help="Lift the quota.")
@click.pass_context
def volume_resize(ctx: click.Context, name: str, quota: int | None, unlimited: bool) -> None:
    """Set the quota of volume NAME (never below what it holds)."""
    if (quota is None) == (not unlimited):
        raise click.UsageError("give exactly one of --quota BYTES or --unlimited")
    _on_storage(ctx, lambda s: click.echo(_volume_line(s.resize_volume(name, quota))))


@volume.command("delete")
@click.argument("name")
@click.pass_context
def volume_delete(ctx: click.Context, name: str) -> None:
    """Delete volume NAME and every file on it, and withdraw it from its VO."""
    from gateway.storage import ownership

    _on_storage(ctx, lambda s, vos: ownership.delete(s, vos, s.volume(name)), with_vo=True)
    click.echo(f"volume {name} deleted", err=True)


# -- VM images on a storage volume ---------------------------------------------------------
@main.group()
def image() -> None:
    """VM images on the storage volume storage.image_volume (OCCI os_tpl mixins)."""


def _image_shelf(ctx: click.Context) -> tuple[Any, Any]:
    from backends.contracts.interfaces import BackendError
    from backends.contracts.registry import UnknownBackend
    from backends.services.images import ImageShelf
    from gateway.runtime import load_backend, open_database

    settings = _settings(ctx)
    volume = settings.storage.image_volume
    if not volume:
        raise click.ClickException(
            "storage.image_volume is not set: name the volume that holds VM images"
        )
    db = open_database(settings)
    try:
        storage = load_backend(settings, db, "storage")
        storage.volume(volume)  # exists (else a clear error, before any upload)
    except (UnknownBackend, BackendError) as exc:
        db.dispose()
        raise click.ClickException(str(exc)) from exc
    return ImageShelf(storage, volume), db


def _refuse_if_in_use(ctx: click.Context, shelf: Any, name: str, doing: str) -> None:
    """Deleting or replacing an image under running VMs would break their disks (each is
    a qcow2 overlay backed by the image): refused, naming them, unless --force."""
    settings = _settings(ctx)
    disk_dir = Path(settings.vm.disk_dir or settings.state_path / "vm-disks")
    users = shelf.users(name, disk_dir)
    if users:
        raise click.ClickException(
            f"not {doing} image {name}: the disks of {len(users)} VM(s) are overlays over it "
            f"({', '.join(users[:5])}{' …' if len(users) > 5 else ''}); delete those VMs "
            "first, or pass --force to break them"
        )


@image.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default="", help="Image name (default: the file's name).")
@click.option("--replace", is_flag=True, help="Replace an image of that name.")
@click.option("--force", is_flag=True, help="Replace it even while VMs' disks use it.")
@click.pass_context
def image_upload(ctx: click.Context, file: Path, name: str, replace: bool, force: bool) -> None:
    """Upload FILE as an image (streamed; a progress bar on a terminal)."""
    from backends.contracts.interfaces import BackendError

    shelf, db = _image_shelf(ctx)
    size = file.stat().st_size
    try:
        if replace and not force:
            _refuse_if_in_use(ctx, shelf, name or file.name, "replacing")
        if sys.stderr.isatty():
            with click.progressbar(
                length=size, label=f"uploading {file.name}", file=sys.stderr
            ) as bar:
                made = shelf.upload(file, name or file.name, overwrite=replace, progress=bar.update)
        else:
            made = shelf.upload(file, name or file.name, overwrite=replace)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        shelf.storage.close()
        db.dispose()
    click.echo(made.id)


@image.command("list")
@click.pass_context
def image_list(ctx: click.Context) -> None:
    """The images, one a line: size in bytes, name, URL (the os_tpl image location)."""
    from backends.contracts.interfaces import BackendError

    shelf, db = _image_shelf(ctx)
    try:
        for found in shelf.list():
            click.echo(f"{found.size_bytes:>14}  {found.title.split(' ')[0]:<32} {found.id}")
    except BackendError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        shelf.storage.close()
        db.dispose()


@image.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete it even while VMs' disks use it.")
@click.pass_context
def image_delete(ctx: click.Context, name: str, force: bool) -> None:
    """Delete the image NAME (refused while VM disks are overlays over it)."""
    from backends.contracts.interfaces import BackendError

    shelf, db = _image_shelf(ctx)
    try:
        if not force:
            _refuse_if_in_use(ctx, shelf, name, "deleting")
        shelf.delete(name)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        shelf.storage.close()
        db.dispose()
    click.echo(f"image {name} deleted", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
