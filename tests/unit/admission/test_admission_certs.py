"""The PEM helpers in flotilla.certs and the file-based helpers built on them."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from admission_support import der, handshake

from flotilla import certs

DAY = dt.timedelta(days=1)


def test_leaf_names_validity_and_issuer() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    ca, ca_key = certs.make_ca_pem("ca-1", validity=100 * DAY, now=now)
    cert, key = certs.make_leaf_pem(
        "svc",
        ca_cert=ca,
        ca_key=ca_key,
        ips=("127.0.0.1", "::1"),
        dns=("svc.ns.svc",),
        validity=10 * DAY,
        now=now,
    )
    assert certs.not_after(ca) == now + 100 * DAY
    assert certs.not_after(cert) == now + 10 * DAY
    assert certs.load_cert(cert).not_valid_before_utc == now - certs.BACKDATE
    names = certs.subject_alt_names(cert)
    assert names == certs.SubjectAltNames(dns=("svc.ns.svc",), ips=("127.0.0.1", "::1"))
    assert names.covers(["svc.ns.svc"], ["127.0.0.1"])
    assert names.covers((), ("0:0::1",))  # addresses compare as addresses
    assert not names.covers(["other.ns.svc"], [])
    assert not names.covers([], ["10.0.0.1"])
    assert certs.key_matches(cert, key) and not certs.key_matches(cert, ca_key)
    assert certs.issued_by(cert, ca)
    other_ca, _ = certs.make_ca_pem("ca-1", now=now)  # same name, another key
    assert not certs.issued_by(cert, other_ca)
    assert certs.subject_alt_names(ca) == certs.SubjectAltNames((), ())


def test_a_leaf_never_outlives_its_ca() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    ca, ca_key = certs.make_ca_pem("ca", validity=5 * DAY, now=now)
    cert, _ = certs.make_leaf_pem("svc", ca_cert=ca, ca_key=ca_key, validity=90 * DAY, now=now)
    assert certs.not_after(cert) == certs.not_after(ca)


def test_split_pem_keeps_each_certificate() -> None:
    a, _ = certs.make_ca_pem("a")
    b, _ = certs.make_ca_pem("b")
    parts = certs.split_pem(b"# comment\n" + a + b"\n" + b)
    assert [certs.load_cert(p) for p in parts] == [certs.load_cert(a), certs.load_cert(b)]
    assert certs.split_pem(b"") == []


def test_a_bundle_of_two_cas_verifies_leaves_of_either(tmp_path: Path) -> None:
    """Two CAs in one trust bundle (CA rotation): a TLS client finds the right issuer for each leaf."""
    old_ca, old_key = certs.make_ca_pem("webhook-ca@1")
    new_ca, new_key = certs.make_ca_pem("webhook-ca@2")
    client = ssl.create_default_context(cadata=(new_ca + old_ca).decode())
    only_new = ssl.create_default_context(cadata=new_ca.decode())
    for ca, key in ((old_ca, old_key), (new_ca, new_key)):
        cert, leaf_key = certs.make_leaf_pem("svc", ca_cert=ca, ca_key=key)
        (tmp_path / "tls.crt").write_bytes(cert)
        (tmp_path / "tls.key").write_bytes(leaf_key)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
        assert handshake(server, client) == der(cert)
        if ca is old_ca:
            with pytest.raises(ssl.SSLCertVerificationError):
                handshake(server, only_new)


def test_file_helpers_write_private_keys_and_reuse_the_ca(tmp_path: Path) -> None:
    crt, key = certs.make_ca(tmp_path, "rig-ca")
    assert key.stat().st_mode & 0o777 == 0o600
    assert certs.make_ca(tmp_path, "rig-ca") == (crt, key)
    first = crt.read_bytes()
    certs.make_ca(tmp_path, "rig-ca")
    assert crt.read_bytes() == first  # reused, not remade
    leaf = certs.make_leaf(tmp_path, "serving", ca_cert=crt, ca_key=key, dns=("localhost", "x.svc"))
    assert leaf.key.stat().st_mode & 0o777 == 0o600
    assert certs.issued_by(leaf.cert.read_bytes(), first)
    assert certs.subject_alt_names(leaf.cert.read_bytes()).covers(["localhost", "x.svc"], ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf.cert, leaf.key)
    rsa = certs.make_rsa_key(tmp_path / "sa" / "sa.key")
    assert rsa.stat().st_mode & 0o777 == 0o600
