"""Self-made X.509 material: a CA and leaf certificates with IP and DNS SANs.

Used by the rig (API server serving certificates, service-account keys) and by the operator's
admission webhook (:mod:`flotilla.admission.tls`). Kopf's own self-signing needs ``oscrypto``,
which does not load on OpenSSL 3.0.10+, so Flotilla makes its certificates with ``cryptography``.

The PEM helpers (``make_ca_pem``, ``make_leaf_pem``, ``not_after``, ``subject_alt_names``, ...)
work in memory; ``make_ca`` and ``make_leaf`` write their results to files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)
BACKDATE = dt.timedelta(minutes=5)
"""``notBefore`` is set this far in the past, so a peer whose clock is a little behind accepts it."""

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\r?\n?", re.DOTALL)


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class SubjectAltNames:
    dns: tuple[str, ...]
    ips: tuple[str, ...]

    def covers(self, dns: tuple[str, ...] | list[str], ips: tuple[str, ...] | list[str]) -> bool:
        """Every name in ``dns`` and every address in ``ips`` is among these SANs."""
        have_ips = {ipaddress.ip_address(ip) for ip in self.ips}
        return set(dns) <= set(self.dns) and all(ipaddress.ip_address(ip) in have_ips for ip in ips)


# ------------------------------------------------------------------ in memory (PEM bytes)
def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _load_ec_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"expected an EC private key, got {type(key).__name__}")
    return key


def make_ca_pem(
    common_name: str = "flotilla-ca",
    *,
    validity: dt.timedelta = _VALIDITY,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A self-signed CA (EC P-256): (certificate PEM, private key PEM)."""
    now = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_leaf_pem(
    common_name: str,
    *,
    ca_cert: bytes,
    ca_key: bytes,
    ips: tuple[str, ...] | list[str] = ("127.0.0.1",),
    dns: tuple[str, ...] | list[str] = ("localhost",),
    validity: dt.timedelta = _VALIDITY,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A certificate signed by the CA, valid for server and client auth: (certificate PEM, key PEM).

    It expires after ``validity`` or when the CA does, whichever comes first."""
    now = _now(now)
    ca = x509.load_pem_x509_certificate(ca_cert)
    ca_private = _load_ec_key(ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    sans += [x509.DNSName(d) for d in dns]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + validity, ca.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_private.public_key()), critical=False
        )
        .sign(ca_private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def split_pem(bundle: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, each as its own PEM block (text between blocks is dropped)."""
    return [m.group(0).strip() + b"\n" for m in _PEM_CERT.finditer(bundle)]


def load_cert(pem: bytes) -> x509.Certificate:
    """The first certificate of a PEM block; ValueError when there is none."""
    return x509.load_pem_x509_certificate(pem)


def not_after(pem: bytes) -> dt.datetime:
    """When the (first) certificate in ``pem`` expires (timezone-aware, UTC)."""
    return load_cert(pem).not_valid_after_utc


def subject_alt_names(pem: bytes) -> SubjectAltNames:
    """The DNS names and IP addresses a certificate is valid for (empty when it has no SAN extension)."""
    try:
        ext = load_cert(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SubjectAltNames((), ())
    return SubjectAltNames(
        dns=tuple(ext.get_values_for_type(x509.DNSName)),
        ips=tuple(str(ip) for ip in ext.get_values_for_type(x509.IPAddress)),
    )


def key_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """The private key belongs to the certificate."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    cert_public = load_cert(cert_pem).public_key()
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(key.public_key().public_bytes(*fmt) == cert_public.public_bytes(*fmt))


def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """``cert_pem`` carries a valid signature of the CA in ``ca_pem`` (and names it as issuer)."""
    try:
        load_cert(cert_pem).verify_directly_issued_by(load_cert(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# ------------------------------------------------------------------ files
def _write_key(path: Path, pem: bytes) -> None:
    path.write_bytes(pem)
    path.chmod(0o600)


def make_ca(directory: Path, common_name: str = "flotilla-ca") -> tuple[Path, Path]:
    """Create ``ca.crt``/``ca.key`` in ``directory`` (reused when both exist)."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key_path = directory / "ca.crt", directory / "ca.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    cert_pem, key_pem = make_ca_pem(common_name)
    _write_key(key_path, key_pem)
    crt.write_bytes(cert_pem)
    return crt, key_path


def make_leaf(
    directory: Path,
    name: str,
    *,
    ca_cert: Path,
    ca_key: Path,
    ips: tuple[str, ...] = ("127.0.0.1",),
    dns: tuple[str, ...] = ("localhost",),
) -> CertPaths:
    """Create ``<name>.crt``/``<name>.key`` signed by the CA, valid for server and client auth."""
    cert_pem, key_pem = make_leaf_pem(
        name, ca_cert=ca_cert.read_bytes(), ca_key=ca_key.read_bytes(), ips=ips, dns=dns
    )
    crt_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    _write_key(key_path, key_pem)
    crt_path.write_bytes(cert_pem)
    return CertPaths(ca_cert=ca_cert, cert=crt_path, key=key_path)


def make_rsa_key(path: Path) -> Path:
    """An RSA private key (service-account token signing), reused when present."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_key(path, _key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    return path
