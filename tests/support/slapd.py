"""A private OpenLDAP ``slapd`` on free loopback ports (ldap:// and ldaps://), stopped by pid.

The tree (slapadd into a private mdb database) holds people (alice, bob, carol, dave) and
groups (developers: alice, carol; auditors: dave; engineering: developers, nested); the
server certificate is issued by a CA the test makes (``keelhaul.stack.tls``). slapd logs
at ``stats`` level, so a test can count the connections it accepted.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keelhaul.netutil import free_port, wait_for_port
from keelhaul.stack.tls import issue_server_cert

__all__ = ["BASE", "PEOPLE", "SlapdServer", "start_slapd"]

BASE = "dc=example,dc=org"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PW = "root-secret"
SERVICE_DN = f"cn=keelhaul,{BASE}"
SERVICE_PW = "service-secret"
PASSWORDS = {
    "alice": "alice-ldap-pw",
    "bob": "bob-ldap-pw",
    "carol": "carol-ldap-pw",
    "dave": "dave-ldap-pw",
}


def _tree() -> str:
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: {SERVICE_DN}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole"
        f"\ncn: keelhaul\nuserPassword: {SERVICE_PW}",
    ]
    for name, password in PASSWORDS.items():
        entries.append(
            f"dn: uid={name},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}"
            f"\nsn: {name}\nuserPassword: {password}"
        )
    entries.append(
        f"dn: cn=developers,{GROUPS}\nobjectClass: groupOfNames\ncn: developers"
        f"\nmember: uid=alice,{PEOPLE}\nmember: uid=carol,{PEOPLE}"
    )
    entries.append(  # a group whose rules grant less (pull only, in the e2e ACL)
        f"dn: cn=auditors,{GROUPS}\nobjectClass: groupOfNames\ncn: auditors"
        f"\nmember: uid=dave,{PEOPLE}"
    )
    entries.append(  # nested: developers are part of engineering
        f"dn: cn=engineering,{GROUPS}\nobjectClass: groupOfNames\ncn: engineering"
        f"\nmember: cn=developers,{GROUPS}"
    )
    return "\n\n".join(entries) + "\n"


def _config(d: Path, idletimeout: int) -> str:
    schema = Path("/etc/ldap/schema")
    includes = "".join(
        f"include {schema / n}.schema\n" for n in ("core", "cosine", "inetorgperson", "nis")
    )
    return f"""{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
loglevel stats
idletimeout {idletimeout}
TLSCACertificateFile {d}/ca.crt
TLSCertificateFile {d}/server.crt
TLSCertificateKeyFile {d}/server.key
database mdb
maxsize 16777216
suffix "{BASE}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {d}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="{SERVICE_DN}" read by users read by * none
"""


@dataclass
class SlapdServer:
    dir: Path
    port: int
    tls_port: int
    proc: subprocess.Popen[bytes]
    log: Path
    ca: Path

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def backend(self, **over: Any) -> dict[str, Any]:
        """The token service's ``kind: ldap`` entry for this directory (groups by search,
        one nested level); ``over`` replaces or adds keys."""
        backend: dict[str, Any] = {
            "kind": "ldap",
            "servers": [self.url],
            "bind_dn": SERVICE_DN,
            "bind_password": SERVICE_PW,
            "base_dn": PEOPLE,
            "group_attribute": None,
            "group_search": {"base_dn": GROUPS},
            "nested_depth": 1,
        }
        return backend | over

    def accepted(self) -> int:
        """Connections slapd has accepted so far (its stats log)."""
        return self.log.read_text(errors="replace").count(" ACCEPT from ")

    def binds(self, dn: str) -> int:
        """Simple binds as ``dn`` so far (a new connection of that identity each)."""
        return self.log.read_text(errors="replace").count(f' BIND dn="{dn}" method=')

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_slapd(d: Path, *, idletimeout: int = 0) -> SlapdServer:
    """``idletimeout``: seconds after which slapd closes an idle client connection (0: never)."""
    slapd = shutil.which("slapd") or "/usr/sbin/slapd"
    slapadd = shutil.which("slapadd") or "/usr/sbin/slapadd"
    d.mkdir(parents=True, exist_ok=True)
    (d / "db").mkdir()
    tls = issue_server_cert(
        d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key", ["127.0.0.1", "localhost"]
    )
    conf = d / "slapd.conf"
    conf.write_text(_config(d, idletimeout))
    (d / "tree.ldif").write_text(_tree())
    subprocess.run(
        [slapadd, "-f", str(conf), "-l", str(d / "tree.ldif")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port, tls_port = free_port(), free_port()
    log = d / "slapd.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                slapd,
                "-f",
                str(conf),
                "-h",
                f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/",
                "-d",
                "stats",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if not (wait_for_port("127.0.0.1", port, 15) and wait_for_port("127.0.0.1", tls_port, 5)):
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"slapd did not start; see {log}")
    return SlapdServer(d, port, tls_port, proc, log, tls.ca_cert)
