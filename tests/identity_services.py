"""A site's identity services for the tests: a real OpenLDAP slapd with people, groups and
pool accounts, and two real MIT Kerberos realms that trust each other.

Built from :mod:`tests.services` like the PostgreSQL fixture: binaries found (or skipped
locally / failed under CI=true), started in a temp folder on free loopback ports, waited
for, stopped by PID. The session fixtures that use them are in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests import services

# -- OpenLDAP ------------------------------------------------------------------------

SUFFIX = "dc=xg,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret"
GATEWAY_DN = f"cn=gateway,ou=services,{SUFFIX}"
GATEWAY_PW = "gateway-secret"
SCHEMA_DIR = Path("/etc/ldap/schema")

# The part of the eduPerson schema (REFEDS, OIDs of internet2) the gateway reads; Debian's
# slapd ships no eduPerson schema.
EDUPERSON_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.5923.1.1.1.6 NAME 'eduPersonPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.5923.1.1.1.7 NAME 'eduPersonEntitlement'
  EQUALITY caseExactMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.5923.1.1.2 NAME 'eduPerson' AUXILIARY
  MAY ( eduPersonPrincipalName $ eduPersonEntitlement ) )
"""


def _person(uid: str, number: int, name: str, mail: str, eppn: str) -> str:
    given, _, surname = name.partition(" ")
    return f"""\
dn: uid={uid},ou=people,{SUFFIX}
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: eduPerson
uid: {uid}
cn: {name}
sn: {surname or given}
givenName: {given}
displayName: {name}
mail: {mail}
eduPersonPrincipalName: {eppn}
uidNumber: {number}
gidNumber: {number}
homeDirectory: /home/{uid}
loginShell: /bin/bash
"""


def _pool_account(vo: str, n: int, number: int) -> str:
    uid = f"{vo}{n:03d}"
    return f"""\
dn: uid={uid},ou=pool-{vo},ou=pools,{SUFFIX}
objectClass: account
objectClass: posixAccount
uid: {uid}
cn: {uid}
uidNumber: {number}
gidNumber: 60000
homeDirectory: /pool/{uid}
"""


def _ou(name: str, parent: str = SUFFIX) -> str:
    return f"dn: ou={name},{parent}\nobjectClass: organizationalUnit\nou: {name}\n"


# People: alice and the partner realm's guest bob are in VOs; dave is in none. The group
# names follow the pattern "vo-<vo>[-<group>]"; "atlas-managers" is mapped explicitly.
DIRECTORY_LDIF = "\n".join(
    [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: xg\no: XG test\n",
        _ou("people"),
        _ou("groups"),
        _ou("services"),
        _ou("pools"),
        _ou("pool-atlas", f"ou=pools,{SUFFIX}"),
        _ou("pool-cms", f"ou=pools,{SUFFIX}"),
        f"dn: {GATEWAY_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject"
        f"\ncn: gateway\nuserPassword: {GATEWAY_PW}\n",
        _person("alice", 10001, "Alice Liddell", "alice@xg.test", "alice@xg.test"),
        _person("partner-bob", 10002, "Bob Partner", "bob@partner.test", "bob@partner.test"),
        _person("dave", 10004, "Dave Nogroup", "dave@xg.test", "dave@xg.test"),
        # a second entry with dave's mail: a lookup by that mail is ambiguous
        _person("dave2", 10005, "Dave Twice", "dave@xg.test", "dave2@xg.test"),
        f"dn: cn=vo-atlas,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: vo-atlas\n"
        f"member: uid=alice,ou=people,{SUFFIX}\nmember: uid=partner-bob,ou=people,{SUFFIX}\n",
        f"dn: cn=vo-atlas-prod,ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: vo-atlas-prod\n"
        "gidNumber: 20001\nmemberUid: alice\n",
        f"dn: cn=atlas-managers,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\n"
        f"cn: atlas-managers\nmember: uid=alice,ou=people,{SUFFIX}\n",
        f"dn: cn=vo-cms,ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: vo-cms\n"
        f"member: uid=partner-bob,ou=people,{SUFFIX}\n",
        f"dn: cn=staff,ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: staff\n"
        "gidNumber: 20100\nmemberUid: alice\nmemberUid: dave\n",
        *(_pool_account("atlas", n, 50000 + n) for n in (3, 1, 2)),
        _pool_account("cms", 1, 51001),
    ]
)

# What the gateway's [ldap] section says about this directory.
LDAP_MAPPING = {
    "vo_group_pattern": r"vo-(?P<vo>[a-z0-9]+)(?:-(?P<group>[a-z0-9]+))?",
    "vo_groups": {f"cn=atlas-managers,ou=groups,{SUFFIX}": "atlas:manager"},
}


def slapd_settings(url: str, **overrides: object) -> dict[str, object]:
    """The [ldap] section for a directory at ``url`` (keyword overrides win)."""
    return {
        "url": url,
        "bind_dn": GATEWAY_DN,
        "bind_password": GATEWAY_PW,
        "user_base": f"ou=people,{SUFFIX}",
        "group_base": f"ou=groups,{SUFFIX}",
        "pool_base": f"ou=pool-{{vo}},ou=pools,{SUFFIX}",
        "network_timeout": 2.0,
        "timeout": 2.0,
        **LDAP_MAPPING,
        **overrides,
    }


def make_ca_and_server_cert(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate it signed for 127.0.0.1 and localhost:
    (CA certificate, server certificate, server key), PEM files in ``directory``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tuple(directory / f"{name}-{part}.pem" for part in ("ca", "cert", "key"))
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Slapd:
    """A running slapd; ``restart`` brings it back on the same port with the same data.
    With TLS it also listens for ldaps:// on ``tls_port`` and offers StartTLS."""

    directory: Path
    port: int
    binary: str
    service: services.Service | None = None
    tls_port: int | None = None
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def start(self) -> None:
        listen = self.url + "/" + (f" {self.ldaps_url}/" if self.tls_port else "")
        config = str(self.directory / "slapd.conf")
        # -d 0: stay in the foreground (the PID we hold is the server), log nothing extra
        self.service = services.start(
            "slapd",
            [self.binary, "-d", "0", "-f", config, "-h", listen],
            directory=self.directory,
            port=self.port,
            ready=services.port_answers(self.port),
        )

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def restart(self) -> None:
        self.stop()
        self.start()


def make_slapd(directory: Path, *, tls: bool = False) -> Slapd:
    """Write slapd.conf and the schema, load the LDIF offline (slapadd), start slapd;
    with ``tls``, a certificate from a throw-away CA for StartTLS and ldaps://."""
    bins = services.require(
        "slapd",
        "slapadd",
        hint="install the Debian packages slapd ldap-utils (./scripts/test does)",
        search=["/usr/sbin"],
    )
    if not (SCHEMA_DIR / "inetorgperson.schema").exists():
        services.missing("the OpenLDAP schema files", "install the Debian package slapd")
    (directory / "db").mkdir(parents=True)
    (directory / "eduperson.schema").write_text(EDUPERSON_SCHEMA)
    tls_config, ca_file = "", None
    if tls:
        ca_file, cert, key = make_ca_and_server_cert(directory, "slapd")
        tls_config = (
            f"TLSCACertificateFile {ca_file}\nTLSCertificateFile {cert}\n"
            f"TLSCertificateKeyFile {key}\n"
        )
    includes = "\n".join(
        f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")
    )
    (directory / "slapd.conf").write_text(
        f"""{includes}
include {directory / "eduperson.schema"}
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {directory / "slapd.pid"}
argsfile {directory / "slapd.args"}
loglevel none
{tls_config}database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {directory / "db"}
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{GATEWAY_DN}" read by * none
"""
    )
    (directory / "data.ldif").write_text(DIRECTORY_LDIF)
    subprocess.run(
        [
            bins["slapadd"],
            "-q",
            "-f",
            str(directory / "slapd.conf"),
            "-l",
            str(directory / "data.ldif"),
        ],
        check=True,
        capture_output=True,
    )
    slapd = Slapd(
        directory,
        services.free_port(),
        bins["slapd"],
        tls_port=services.free_port() if tls else None,
        ca_file=ca_file,
    )
    slapd.start()
    return slapd


# -- MIT Kerberos ---------------------------------------------------------------------

REALM = "XG.TEST"
PARTNER = "PARTNER.TEST"
USER_PASSWORD = "kerberos-secret"
CROSS_PASSWORD = "cross-realm-secret"
SERVICE = "HTTP/localhost"
KDC_HINT = "install the Debian packages krb5-kdc krb5-admin-server krb5-user (./scripts/test does)"

# Users of each realm: alice and dave at home, bob at the partner institution.
REALM_USERS = {REALM: ("alice", "dave", "erin"), PARTNER: ("bob",)}


@dataclass
class KerberosRealms:
    """Two realms with their KDCs running, the HTTP service's keytab, and client files."""

    directory: Path
    krb5_conf: Path  # clients': both realms, localhost belongs to XG.TEST
    server_krb5_conf: Path  # the gateway's: the same with a 1 s clock skew
    keytab: Path
    ports: dict[str, int]
    kdcs: list[services.Service] = field(default_factory=list)
    bins: dict[str, str] = field(default_factory=dict)

    def client_env(self, ccache: Path) -> dict[str, str]:
        return {
            **os.environ,
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5CCNAME": f"FILE:{ccache}",
        }

    def kinit(self, principal: str, ccache: Path, lifetime: str = "") -> dict[str, str]:
        """A ticket for ``principal`` in ``ccache``; gives the environment that uses it."""
        env = self.client_env(ccache)
        subprocess.run(
            [self.bins["kinit"], *(["-l", lifetime] if lifetime else []), principal],
            input=USER_PASSWORD + "\n",
            env=env,
            text=True,
            check=True,
            capture_output=True,
        )
        return env

    def stop(self) -> None:
        for kdc in self.kdcs:
            kdc.stop()


def _kdc_conf(directory: Path, realm: str, port: int) -> str:
    base = directory / realm
    return f"""[kdcdefaults]
 kdc_ports = {port}
 kdc_tcp_ports = {port}

[realms]
 {realm} = {{
  database_name = {base / "principal"}
  key_stash_file = {base / "stash"}
  acl_file = {base / "kadm5.acl"}
  max_life = 1h
  max_renewable_life = 0
 }}

[logging]
 kdc = FILE:{base / "kdc.log"}
"""


def _krb5_conf(ports: dict[str, int], clockskew: int | None = None) -> str:
    realms = "\n".join(
        f" {realm} = {{\n  kdc = 127.0.0.1:{port}\n }}" for realm, port in ports.items()
    )
    skew = f" clockskew = {clockskew}\n" if clockskew is not None else ""
    return f"""[libdefaults]
 default_realm = {REALM}
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
 dns_canonicalize_hostname = false
 udp_preference_limit = 1
{skew}
[realms]
{realms}

[domain_realm]
 localhost = {REALM}
"""


def make_realms(directory: Path) -> KerberosRealms:
    """kdb5_util a database per realm, principals (users, cross-realm krbtgt both ways,
    HTTP/localhost with a keytab), then start one ``krb5kdc -n`` per realm."""
    bins = services.require(
        "kdb5_util", "kadmin.local", "krb5kdc", "kinit", hint=KDC_HINT, search=["/usr/sbin"]
    )
    ports = {REALM: services.free_port(), PARTNER: services.free_port()}
    realms = KerberosRealms(
        directory,
        directory / "krb5.conf",
        directory / "krb5-server.conf",
        directory / "http.keytab",
        ports,
        bins=bins,
    )
    realms.krb5_conf.write_text(_krb5_conf(ports))
    realms.server_krb5_conf.write_text(_krb5_conf(ports, clockskew=1))
    try:
        for realm, port in ports.items():
            base = directory / realm
            base.mkdir()
            (base / "kadm5.acl").write_text("")
            (base / "kdc.conf").write_text(_kdc_conf(directory, realm, port))
            env = {
                **os.environ,
                "KRB5_CONFIG": str(realms.krb5_conf),
                "KRB5_KDC_PROFILE": str(base / "kdc.conf"),
            }
            subprocess.run(
                [bins["kdb5_util"], "create", "-s", "-r", realm, "-P", "master-" + realm],
                env=env,
                check=True,
                capture_output=True,
            )
            commands = [
                f"addprinc -pw {CROSS_PASSWORD} krbtgt/{REALM}@{PARTNER}",
                f"addprinc -pw {CROSS_PASSWORD} krbtgt/{PARTNER}@{REALM}",
                *(f"addprinc -pw {USER_PASSWORD} {user}" for user in REALM_USERS[realm]),
            ]
            if realm == REALM:
                commands += [f"addprinc -randkey {SERVICE}", f"ktadd -k {realms.keytab} {SERVICE}"]
            subprocess.run(
                [bins["kadmin.local"], "-r", realm],
                input="\n".join(commands) + "\n",
                env=env,
                text=True,
                check=True,
                capture_output=True,
            )
            realms.kdcs.append(
                services.start(
                    f"krb5kdc-{realm}",
                    [bins["krb5kdc"], "-n", "-r", realm, "-P", str(base / "kdc.pid")],
                    directory=base,
                    port=port,
                    ready=services.port_answers(port),
                    env=env,
                )
            )
    except BaseException:
        realms.stop()
        raise
    return realms


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
