"""ACS verifications/s: the gateway's SAML Response validation beside pysaml2's own SP
(which forks Debian's xmlsec1 per signature) and beside a bare python-xmlsec verify of
the same signatures, all on the same pysaml2-signed responses, in one run.

    .venv/bin/python benchmarks/bench_saml_acs.py [--responses 300] [--rounds 5]

Figures:
- gateway ACS, full: ``ServiceProvider.consume`` as the endpoint calls it: base64,
  secure parse, signature (xmlsec, key from federation metadata, wrapping checks), every
  condition, the InResponseTo request consumed and the replay cache written in SQLite.
- gateway ACS, checks only: the same validator with in-memory request/replay stores
  (what the XML and crypto work costs without the two database writes).
- bare python-xmlsec: parse + register IDs + verify the assertion signature, nothing else.
- pysaml2 SP: ``Saml2Client.parse_authn_request_response`` on the same responses.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import xmlsec  # noqa: E402
from lxml import etree  # noqa: E402

from backends.store import migrate  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.saml.namespaces import DS, SAML, q  # noqa: E402
from gateway.saml.response import ResponseValidator  # noqa: E402
from gateway.saml.sp import ServiceProvider  # noqa: E402
from tests.interop import saml_idp  # noqa: E402


class _Outstanding:
    def __init__(self, ids: set[str]) -> None:
        self.ids = set(ids)

    def consume(self, request_id: str) -> object | None:
        return object() if request_id in self.ids else None


class _MemoryReplay:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def first_use(self, issuer: str, assertion_id: str, expires_at: datetime) -> bool:
        key = (issuer, assertion_id)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=300)
    parser.add_argument("--pysaml2", type=int, default=20, help="per round, for pysaml2")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import IdPConfig, SPConfig
    from saml2.saml import NAMEID_FORMAT_TRANSIENT, NameID
    from saml2.server import Server

    with tempfile.TemporaryDirectory(prefix="xg-bench-saml-") as tmp:
        d = Path(tmp)
        idp_key, idp_cert = saml_idp.make_keypair(d, "idp")
        fed_key, fed_cert = saml_idp.make_keypair(d, "federation")
        idp = saml_idp.IdP(d, 9, idp_key, idp_cert)
        (d / "fed.xml").write_bytes(
            saml_idp.sign_aggregate(saml_idp.aggregate([idp.metadata()]), fed_key, fed_cert, d)
        )
        settings = load_settings(
            None,
            state_dir=str(d / "state"),
            server={"public_url": "https://gateway.example.org"},
            logging={"format": "text", "access_log": False},
            saml={
                "enabled": True,
                "key_size": 2048,
                "federations": [{"source": str(d / "fed.xml"), "certificate": str(fed_cert)}],
            },
        )
        migrate.upgrade(settings.database_url)
        from backends.store import Database

        db = Database(settings.database_url)
        sp = ServiceProvider(settings, db)
        sp.federations.load_all()
        idp.sp_metadata = sp.metadata()
        server = Server(config=IdPConfig().load(idp.config()))

        print(f"making {args.responses} responses signed by pysaml2 (xmlsec1) ...", flush=True)
        responses: list[tuple[str, str]] = []  # (request id, base64 Response)
        for n in range(args.responses):
            url = sp.authn_request_url(idp.entity_id, "/portal/")
            query = dict(
                p.split("=", 1) for p in url.split("?", 1)[1].split("&")
            )  # still URL-encoded
            from urllib.parse import unquote

            request = server.parse_authn_request(
                unquote(query["SAMLRequest"]),
                BINDING_HTTP_REDIRECT,
                sigalg=unquote(query["SigAlg"]),
                signature=unquote(query["Signature"]),
            )
            resp_args = server.response_args(request.message)
            response = server.create_authn_response(
                dict(saml_idp.USERS["alice"][1]),
                userid="alice",
                name_id=NameID(format=NAMEID_FORMAT_TRANSIENT, text=f"_t{n}"),
                authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
                sign_assertion=True,
                **saml_idp.SHA256,
                **resp_args,
            )
            responses.append(
                (request.message.id, base64.b64encode(str(response).encode()).decode())
            )

        idp_xmlsec_key = xmlsec.Key.from_file(str(idp_cert), xmlsec.KeyFormat.CERT_PEM)

        def bare(b64: str) -> None:
            root = etree.fromstring(base64.b64decode(b64))
            assertion = root.find(q(SAML, "Assertion"))
            xmlsec.tree.add_ids(assertion, ["ID"])
            ctx = xmlsec.SignatureContext()
            ctx.key = idp_xmlsec_key
            ctx.verify(assertion.find(q(DS, "Signature")))

        checker = ResponseValidator(
            sp.validator.policy,
            sp.federations,
            _Outstanding({rid for rid, _ in responses}),
            _MemoryReplay(),
            [sp.encryption.key_pem],
            sp.attribute_map,
        )

        def checks(b64: str) -> None:
            checker.validate(b64, acs_url=sp.acs_url)

        def full(b64: str) -> None:
            sp.consume(b64)

        def interleaved(batch: list[tuple[str, str]]) -> dict[str, float]:
            """The three on each response in turn, so that a busy machine slows them
            alike (2 cores shared with other work make whole-loop timings drift)."""
            spent = {"bare": 0.0, "checks": 0.0, "full": 0.0}
            steps = [("bare", bare), ("checks", checks), ("full", full)]
            for index, (_rid, b64) in enumerate(batch):
                turn = index % len(steps)  # each goes first as often as the others
                for name, step in steps[turn:] + steps[:turn]:
                    started = time.perf_counter()
                    step(b64)
                    spent[name] += time.perf_counter() - started
            return {name: rate(len(batch), seconds) for name, seconds in spent.items()}

        sp_conf = SPConfig().load(
            {
                "entityid": sp.entity_id,
                "service": {
                    "sp": {
                        "endpoints": {
                            "assertion_consumer_service": [(sp.acs_url, BINDING_HTTP_POST)]
                        },
                        "want_assertions_signed": True,
                        "want_response_signed": False,
                        "allow_unsolicited": False,
                    }
                },
                "key_file": str(sp.signing.key_path),
                "cert_file": str(sp.signing.cert_path),
                "encryption_keypairs": [
                    {
                        "key_file": str(sp.encryption.key_path),
                        "cert_file": str(sp.encryption.cert_path),
                    }
                ],
                "metadata": {"inline": [idp.metadata().decode()]},
                "xmlsec_binary": saml_idp.xmlsec1(),
                "accepted_time_diff": 180,
            }
        )
        client = Saml2Client(config=sp_conf)

        def pysaml2(batch: list[tuple[str, str]]) -> float:
            batch = batch[: args.pysaml2]
            started = time.perf_counter()
            for rid, b64 in batch:
                client.parse_authn_request_response(b64, BINDING_HTTP_POST, outstanding={rid: "/"})
            return rate(len(batch), time.perf_counter() - started)

        rounds: dict[str, list[float]] = {"bare": [], "checks": [], "full": [], "pysaml2": []}
        # The full path consumes request state and writes the replay cache, so each
        # round gets its own slice of responses.
        per_round = max(1, len(responses) // args.rounds)
        for r in range(args.rounds):
            batch = responses[r * per_round : (r + 1) * per_round]
            for name, value in interleaved(batch).items():
                rounds[name].append(value)
            rounds["pysaml2"].append(pysaml2(batch))

        med = {k: statistics.median(v) for k, v in rounds.items()}
        print(
            f"\nACS verifications/s ({len(responses)} pysaml2-signed responses, RSA-2048/SHA-256, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC), median of {args.rounds} rounds:"
        )
        for key, label in (
            ("bare", "bare python-xmlsec verify"),
            ("checks", "gateway ACS, checks only"),
            ("full", "gateway ACS, full (SQLite writes)"),
            ("pysaml2", "pysaml2 SP (forks xmlsec1)"),
        ):
            print(f"  {label:35s}{med[key]:9.0f}/s   {_fmt(rounds[key])}")
        # Ratios per round (both sides of a ratio ran under the same load), then medians.
        ratios = {
            "gateway full / pysaml2 SP": ("full", "pysaml2", "aim >= 20x"),
            "gateway checks / bare xmlsec": ("checks", "bare", "aim >= 0.7x"),
            "gateway full / bare xmlsec": ("full", "bare", "with the two SQL writes"),
        }
        print()
        for label, (top, bottom, aim) in ratios.items():
            per_round = [t / b for t, b in zip(rounds[top], rounds[bottom], strict=True)]
            print(
                f"  {label:30s}= {statistics.median(per_round):6.2f}x  "
                f"[{', '.join(f'{r:.2f}' for r in per_round)}]  ({aim})"
            )
        sp.close()
        db.dispose()


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


if __name__ == "__main__":
    main()
