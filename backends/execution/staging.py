"""Data staging: copy a job's input files in before it runs and its results out after.

JSDL ``DataStaging`` names a file in the job's working directory and a source or target
URL (http, https, ftp, file, or a storage volume's glusterfs:/xtreemfs: URL, which the
gateway has resolved to the folder where the volume is mounted here), a ``CreationFlag``
(overwrite | append | dontOverwrite) and optional credentials. This module does exactly
that and nothing more; it is neutral (no gateway imports) and uses only the standard
library, because the activity supervisor (``supervisor.py``) imports it and must start fast
and never break with a dependency upgrade: ``urllib.request`` verifies TLS by default,
takes timeouts, and streams both ways, which is all staging needs; ``ftplib`` is the only
maintained FTP client anyway.

Every failure is a :class:`StagingError` whose message names the file and the URL (with
any password in the URL removed), so a person reading the activity's failure reason knows
what to fix. A file name never leaves the working directory, a ``file:`` URL never leaves
the configured roots, and a transfer never exceeds the size bound or the deadline.
"""

from __future__ import annotations

import base64
import ftplib
import http.client
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CREATION_FLAGS = ("overwrite", "append", "dontOverwrite")
VOLUME_SCHEMES = ("glusterfs", "xtreemfs")
SCHEMES = ("http", "https", "ftp", "file", *VOLUME_SCHEMES)
CHUNK = 256 * 1024


class StagingError(Exception):
    """A staging step failed; the message names the file and the URL and says why."""


@dataclass(frozen=True)
class StagingLimits:
    """Bounds every transfer obeys (from the execution backend's configuration)."""

    max_bytes: int = 10 * 1024**3
    timeout: float = 300.0  # seconds for the whole transfer
    io_timeout: float = 30.0  # seconds without progress on the socket
    file_roots: tuple[str, ...] = field(default=())  # where file: URLs may point
    ca_file: str = ""  # CA certificates for https (PEM); default: the system's


NO_LIMITS = StagingLimits()


@dataclass(frozen=True)
class TransferOptions:
    """What one transfer brings besides its file and URL (from the job's StagingSpec):
    the CreationFlag, credentials for this transfer only, and for a volume URL the folder
    the volume is mounted at here and the room its quota left (stage-out)."""

    creation_flag: str = "overwrite"
    username: str = ""
    password: str = field(default="", repr=False)
    bearer_token: str = field(default="", repr=False)
    local_root: str = ""
    free_bytes: int | None = None


DEFAULT_OPTIONS = TransferOptions()


def preload() -> None:
    """Import every module a transfer may need, before dropping to the job's account
    (which may not be able to read the interpreter's library folder)."""
    import encodings.idna  # noqa: F401 - host names are encoded with it
    import ssl  # noqa: F401
    import urllib.error
    import urllib.request  # noqa: F401


def redact(url: str) -> str:
    """The URL without a password in its user-info part (it goes into failure reasons)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def job_path(workdir: Path, filename: str) -> Path:
    """``filename`` inside ``workdir``; refuses absolute names and any ``..`` escape."""
    if not filename or "\0" in filename:
        raise StagingError(f"file name {filename!r} is empty or contains a NUL byte")
    relative = Path(filename)
    if relative.is_absolute() or ".." in relative.parts:
        raise StagingError(
            f"file name {filename!r} must be relative to the working directory "
            "and must not contain '..'"
        )
    return workdir / relative


def _check_flag(flag: str) -> None:
    if flag not in CREATION_FLAGS:
        raise StagingError(f"CreationFlag {flag!r} is not one of {', '.join(CREATION_FLAGS)}")


def _scheme(url: str, what: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise StagingError(
            f"{what} URL {redact(url)!r} has scheme {parts.scheme or '(none)'!r}; "
            f"supported are {', '.join(SCHEMES)}"
        )
    return parts


def _rooted(url: str, parts: urllib.parse.SplitResult, roots: Iterable[str]) -> Path:
    """The local path of a file: URL, if it lies within one of ``roots``."""
    if parts.netloc not in ("", "localhost"):
        raise StagingError(f"file URL {url!r} names host {parts.netloc!r}; only local files")
    path = Path(os.path.realpath(urllib.parse.unquote(parts.path)))
    allowed = [Path(os.path.realpath(r)) for r in roots]
    if not allowed:
        raise StagingError(
            f"file URL {url!r} refused: file staging is disabled on this gateway "
            "(no execution.file_staging_roots configured)"
        )
    if not any(path == root or root in path.parents for root in allowed):
        raise StagingError(
            f"file URL {url!r} refused: {path} is outside the allowed roots "
            f"({', '.join(str(r) for r in allowed)})"
        )
    return path


def check_file_url(url: str, roots: Iterable[str]) -> None:
    """Raise :class:`StagingError` now for a ``file:`` URL that a transfer would refuse
    (staging off, another host, outside ``roots``), so a backend can refuse the job
    before it is recorded instead of failing it at run time. Other URLs pass."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "file":
        _rooted(url, parts, roots)


def _on_volume(url: str, parts: urllib.parse.SplitResult, local_root: str) -> Path:
    """The local path of a volume URL's file under the folder the volume is mounted at;
    never outside it (no '..', no symbolic link leading out)."""
    if not local_root:
        raise StagingError(
            f"volume URL {url!r} was not resolved to a mounted volume by the gateway"
        )
    _, _, rest = urllib.parse.unquote(parts.path).lstrip("/").partition("/")
    names = [n for n in rest.split("/") if n not in ("", ".")]
    if not names or ".." in names or any("\0" in n for n in names):
        raise StagingError(f"volume URL {url!r} must name a file on the volume, without '..'")
    root = os.path.realpath(local_root)
    path = Path(root, *names)
    real = os.path.realpath(path)
    if not real.startswith(root + os.sep):
        raise StagingError(f"volume URL {url!r} leads outside the volume")
    return path


def _read_local(path: Path, what: str, budget: _Budget, sink: Callable[[bytes], None]) -> None:
    try:
        with path.open("rb") as data:
            while chunk := data.read(CHUNK):
                budget.take(len(chunk))
                sink(chunk)
    except OSError as exc:
        raise StagingError(f"{what}: {exc.strerror or exc}") from exc


class _Budget:
    """Counts bytes and time; raises once the size bound or the deadline is passed."""

    def __init__(self, limits: StagingLimits, what: str) -> None:
        self.limits = limits
        self.what = what
        self.deadline = time.monotonic() + limits.timeout
        self.bytes = 0

    def take(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.max_bytes:
            limit = self.limits.max_bytes
            raise StagingError(f"{self.what}: larger than the limit of {limit} bytes")
        if time.monotonic() > self.deadline:
            raise StagingError(f"{self.what}: not done within {self.limits.timeout:g} s")


# -- HTTP --------------------------------------------------------------------------------
def _http_opener(
    username: str, password: str, token: str = "", ca_file: str = ""
) -> tuple[object, dict[str, str]]:
    import ssl
    import urllib.request

    class _StripAuthOnHostChange(urllib.request.HTTPRedirectHandler):
        """Follow redirects, but never send the credentials to another host."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            if new is not None:
                old_host = urllib.parse.urlsplit(req.full_url).netloc
                if urllib.parse.urlsplit(new.full_url).netloc != old_host:
                    new.headers.pop("Authorization", None)
                    new.unredirected_hdrs.pop("Authorization", None)
            return new

    headers = {"User-Agent": "xtreemgate-staging/1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif username or password:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    # TLS is always verified: the system's CAs, or the site's own bundle
    tls = ssl.create_default_context(cafile=ca_file or None)
    https = urllib.request.HTTPSHandler(context=tls)
    return urllib.request.build_opener(_StripAuthOnHostChange, https), headers


def _http_url(url: str, parts: urllib.parse.SplitResult, username: str, password: str):  # type: ignore[no-untyped-def]
    """Credentials in the URL's user-info become HTTP Basic; the URL loses them."""
    if parts.username is not None and not username:
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), username, password


def _http_error(what: str, exc: Exception) -> StagingError:
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return StagingError(f"{what}: the server answered HTTP {exc.code} {exc.reason}")
    reason = getattr(exc, "reason", exc)
    return StagingError(f"{what}: {reason}")


def _http_get(
    url: str, parts, username, password, sink: Callable[[bytes], None], budget, token=""
) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    plain, username, password = _http_url(url, parts, username, password)
    opener, headers = _http_opener(username, password, token, budget.limits.ca_file)
    request = urllib.request.Request(plain, headers=headers)  # noqa: S310 - scheme checked
    try:
        with opener.open(request, timeout=budget.limits.io_timeout) as response:  # type: ignore[attr-defined]
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > budget.limits.max_bytes:
                raise StagingError(
                    f"{budget.what}: the server announces {length} bytes, more than the "
                    f"limit of {budget.limits.max_bytes} bytes"
                )
            while chunk := response.read1(CHUNK):  # per receive: the deadline holds
                budget.take(len(chunk))
                sink(chunk)
    except StagingError:
        raise
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise _http_error(budget.what, exc) from exc


def _http_put(url, parts, username, password, local: Path, flag: str, budget, token="") -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    if flag == "append":
        raise StagingError(f"{budget.what}: CreationFlag append is not possible over HTTP")
    plain, username, password = _http_url(url, parts, username, password)
    opener, headers = _http_opener(username, password, token, budget.limits.ca_file)
    size = local.stat().st_size
    budget.take(size)
    headers["Content-Length"] = str(size)
    headers["Content-Type"] = "application/octet-stream"
    if flag == "dontOverwrite":
        headers["If-None-Match"] = "*"
    try:
        with local.open("rb") as body:
            request = urllib.request.Request(plain, data=body, headers=headers, method="PUT")  # noqa: S310
            with opener.open(request, timeout=budget.limits.io_timeout) as response:  # type: ignore[attr-defined]
                response.read()
    except (OSError, http.client.HTTPException) as exc:
        if getattr(exc, "code", None) == 412:
            raise StagingError(
                f"{budget.what}: the target exists and CreationFlag is dontOverwrite"
            ) from exc
        raise _http_error(budget.what, exc) from exc


# -- FTP ---------------------------------------------------------------------------------
def _ftp(parts: urllib.parse.SplitResult, username: str, password: str, budget) -> ftplib.FTP:  # type: ignore[no-untyped-def]
    if parts.username is not None and not username:
        username = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
    # Plain FTP is what JSDL documents name; the site chooses to allow it or not.
    ftp = ftplib.FTP(timeout=budget.limits.io_timeout)  # noqa: S321
    try:
        ftp.connect(parts.hostname or "", parts.port or 21)
        ftp.login(username or "anonymous", password or ("anonymous@" if not username else ""))
    except (OSError, ftplib.Error, EOFError) as exc:
        ftp.close()
        raise StagingError(f"{budget.what}: {exc}") from exc
    return ftp


def _ftp_path(parts: urllib.parse.SplitResult) -> str:
    """RFC 1738: the path is relative to the login directory; %2F makes it absolute."""
    path = urllib.parse.unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise StagingError(f"FTP URL names no file: {parts.geturl()!r}")
    return path


def _ftp_get(parts, username, password, sink, budget) -> None:  # type: ignore[no-untyped-def]
    path = _ftp_path(parts)
    ftp = _ftp(parts, username, password, budget)
    try:
        ftp.voidcmd("TYPE I")
        try:
            size = ftp.size(path)
        except ftplib.error_perm:
            size = None
        if size is not None and size > budget.limits.max_bytes:
            raise StagingError(
                f"{budget.what}: the file has {size} bytes, more than the limit of "
                f"{budget.limits.max_bytes} bytes"
            )

        def take(chunk: bytes) -> None:
            budget.take(len(chunk))
            sink(chunk)

        ftp.retrbinary(f"RETR {path}", take, blocksize=CHUNK)
        ftp.quit()
    except (OSError, ftplib.Error, EOFError) as exc:
        raise StagingError(f"{budget.what}: the FTP server said {exc}") from exc
    finally:
        ftp.close()


def _ftp_put(parts, username, password, local: Path, flag: str, budget) -> None:  # type: ignore[no-untyped-def]
    path = _ftp_path(parts)
    budget.take(local.stat().st_size)
    ftp = _ftp(parts, username, password, budget)
    try:
        if flag == "dontOverwrite":
            try:
                ftp.voidcmd("TYPE I")
                ftp.size(path)
            except ftplib.error_perm:
                pass
            else:
                raise StagingError(
                    f"{budget.what}: the target exists and CreationFlag is dontOverwrite"
                )
        command = "APPE" if flag == "append" else "STOR"
        with local.open("rb") as body:
            ftp.storbinary(f"{command} {path}", body, blocksize=CHUNK)
        ftp.quit()
    except (OSError, ftplib.Error, EOFError) as exc:
        raise StagingError(f"{budget.what}: the FTP server said {exc}") from exc
    finally:
        ftp.close()


# -- local files -------------------------------------------------------------------------
def _place(temp: Path, final: Path, flag: str, what: str) -> None:
    """Put a completely received ``temp`` at ``final`` as the CreationFlag says."""
    if flag == "overwrite":
        os.replace(temp, final)
    elif flag == "dontOverwrite":
        try:
            os.link(temp, final)  # atomic "create, but never replace"
        except FileExistsError as exc:
            message = f"{what}: {final.name} exists and CreationFlag is dontOverwrite"
            raise StagingError(message) from exc
        finally:
            temp.unlink(missing_ok=True)
    else:  # append
        fd = os.open(final, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "ab") as out, temp.open("rb") as data:
            while chunk := data.read(CHUNK):
                out.write(chunk)
        temp.unlink()


Sink = Callable[[bytes], None]


def _receive(final: Path, flag: str, what: str, fill: Callable[[Sink], None]) -> int:
    """Write what ``fill`` produces into a temp file beside ``final``, then place it."""
    if flag == "dontOverwrite" and os.path.lexists(final):
        raise StagingError(f"{what}: {final.name} exists and CreationFlag is dontOverwrite")
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.name}.staging-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:

            def sink(chunk: bytes) -> None:
                nonlocal written
                out.write(chunk)
                written += len(chunk)

            fill(sink)
        _place(temp, final, flag, what)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return written


# -- the two directions ------------------------------------------------------------------
def _begin(
    workdir: Path, filename: str, url: str, direction: str, flag: str, limits: StagingLimits
) -> tuple[Path, urllib.parse.SplitResult, _Budget]:
    """What both directions check first: the CreationFlag, the file name, the URL's
    scheme; then the job's path of the file, the parsed URL and the transfer's budget."""
    _check_flag(flag)
    preposition, role = ("from", "source") if direction == "in" else ("to", "target")
    what = f"stage-{direction} of {filename!r} {preposition} {redact(url)!r}"
    path = job_path(workdir, filename)
    return path, _scheme(url, role), _Budget(limits, what)


def stage_in(
    workdir: Path,
    filename: str,
    source: str,
    options: TransferOptions = DEFAULT_OPTIONS,
    limits: StagingLimits = NO_LIMITS,
) -> int:
    """Fetch ``source`` into ``workdir/filename``; returns the number of bytes received."""
    final, parts, budget = _begin(workdir, filename, source, "in", options.creation_flag, limits)
    user, password, token = options.username, options.password, options.bearer_token
    scheme = parts.scheme.lower()

    def fill(sink: Callable[[bytes], None]) -> None:
        if scheme in ("http", "https"):
            _http_get(source, parts, user, password, sink, budget, token)
        elif scheme == "ftp":
            _ftp_get(parts, user, password, sink, budget)
        elif scheme in VOLUME_SCHEMES:
            path = _on_volume(source, parts, options.local_root)
            _read_local(path, budget.what, budget, sink)
        else:
            path = _rooted(source, parts, limits.file_roots)
            _read_local(path, budget.what, budget, sink)

    return _receive(final, options.creation_flag, budget.what, fill)


def stage_out(
    workdir: Path,
    filename: str,
    target: str,
    options: TransferOptions = DEFAULT_OPTIONS,
    limits: StagingLimits = NO_LIMITS,
) -> int:
    """Send ``workdir/filename`` to ``target``; returns the number of bytes sent."""
    flag = options.creation_flag
    local, parts, budget = _begin(workdir, filename, target, "out", flag, limits)
    what = budget.what
    real = Path(os.path.realpath(local))
    workreal = Path(os.path.realpath(workdir))
    if workreal not in real.parents:
        raise StagingError(f"{what}: the file points outside the working directory")
    # read it by its resolved path relative to the working directory: no link is followed
    # on the way, and the folders above the working directory need not be searchable
    source = workdir / real.relative_to(workreal)
    if not source.is_file():
        raise StagingError(f"{what}: the job did not create the file")
    user, password, token = options.username, options.password, options.bearer_token
    scheme = parts.scheme.lower()
    try:
        if scheme in ("http", "https"):
            _http_put(target, parts, user, password, source, flag, budget, token)
        elif scheme == "ftp":
            _ftp_put(parts, user, password, source, flag, budget)
        else:
            if scheme in VOLUME_SCHEMES:
                final = _on_volume(target, parts, options.local_root)
                size = source.stat().st_size
                free_bytes = options.free_bytes
                if free_bytes is not None and size > free_bytes:
                    raise StagingError(
                        f"{what}: {size} bytes do not fit in the volume's quota "
                        f"({free_bytes} bytes were free when the job was accepted)"
                    )
            else:
                final = _rooted(target, parts, limits.file_roots)

            def fill(sink: Callable[[bytes], None]) -> None:
                with source.open("rb") as data:
                    while chunk := data.read(CHUNK):
                        budget.take(len(chunk))
                        sink(chunk)

            return _receive(final, flag, what, fill)
    except OSError as exc:
        raise StagingError(f"{what}: {exc.strerror or exc}") from exc
    return budget.bytes


# -- the job's transfers, as the execution plugins hand them over -------------------------
def transfer(
    direction: str, specs: list[dict[str, Any]], workdir: Path, limits: dict[str, Any]
) -> str:
    """Run every transfer of one direction (``in`` or ``out``) of a job, given as its
    StagingSpecs in plain form (``model.to_plain``) with the plugin's staging limits;
    '' when all worked, else the first failure."""
    bounds = StagingLimits(**{**limits, "file_roots": tuple(limits.get("file_roots", ()))})
    step = stage_in if direction == "in" else stage_out
    for spec in specs:
        url = spec.get("source") if direction == "in" else spec.get("target")
        if not url:
            continue
        options = TransferOptions(
            creation_flag=spec.get("creation_flag") or "overwrite",
            username=spec.get("username") or "",
            password=spec.get("password") or "",
            bearer_token=spec.get("bearer_token") or "",
            local_root=spec.get("local_root") or "",
            free_bytes=spec.get("free_bytes") if direction == "out" else None,
        )
        try:
            step(workdir, spec["filename"], url, options, bounds)
        except StagingError as exc:
            return str(exc)
    return ""
