"""Real HTTP and FTP servers on 127.0.0.1 for the data-staging tests.

The HTTP server serves GET and PUT on a folder, answers ``If-None-Match: *`` with 412
when the file exists, demands Basic credentials when configured, and redirects
``/redirect/<host:port>/<path>`` to another server (to test that credentials are not
forwarded). The FTP server is pyftpdlib, a real RFC 959 server.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class HTTPFiles:
    root: Path
    url: str
    credentials: tuple[str, str] | None = None
    seen_auth: list[str] = field(default_factory=list)


@contextmanager
def http_files(
    root: Path,
    credentials: tuple[str, str] | None = None,
    bearer: str = "",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[HTTPFiles]:
    """``credentials``: demand HTTP Basic with them; ``bearer``: demand that token;
    ``tls``: (certificate, key) PEM files: serve https."""
    state = HTTPFiles(root=root, url="", credentials=credentials)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _authorised(self) -> bool:
            header = self.headers.get("Authorization", "")
            state.seen_auth.append(header)
            if state.credentials is None and not bearer:
                return True
            if bearer and header == f"Bearer {bearer}":
                return True
            if state.credentials is not None:
                expected = base64.b64encode(":".join(state.credentials).encode()).decode()
                if header == f"Basic {expected}":
                    return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="files"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def _path(self) -> Path:
            return root / self.path.lstrip("/")

        def do_GET(self) -> None:
            if self.path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", "http://" + self.path[len("/redirect/") :])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not self._authorised():
                return
            path = self._path()
            if not path.is_file():
                self.send_error(404, "no such file")
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if not self._authorised():
                return
            path = self._path()
            if self.headers.get("If-None-Match") == "*" and path.exists():
                self.send_error(412, "exists")
                return
            length = int(self.headers.get("Content-Length", "0"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.rfile.read(length))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def ftp_files(root: Path, user: str = "grid", password: str = "secret") -> Iterator[str]:  # noqa: S107
    """A pyftpdlib server with one account whose home is ``root``; yields its base URL."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm="elradfmwMT")
    authorizer.add_anonymous(str(root))
    handler = type(
        "Handler",
        (FTPHandler,),
        {"authorizer": authorizer, "banner": "test", "auth_failed_timeout": 0.05},
    )
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"ftp://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(5)


def self_signed(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throw-away certificate for ``host`` (an IP address), and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
