"""Throw-away test PKI generated with the ``openssl`` command-line tool.

Extensions (SKI/AKI, critical basicConstraints and keyUsage) are spelled out
so the certificates also pass OpenSSL's and Python 3.13's strict X.509 checks.
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Certs",
    "CertGenerationError",
    "issue_cert",
    "make_certs",
    "make_expired_cert",
    "server_context",
]

_DAYS = "30"

# One config file for every openssl call: a [req] section so `openssl req`
# never reads the system openssl.cnf, plus one extension section per cert.
_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, {leaf_key_usage}
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[wronghost]
basicConstraints = critical, CA:FALSE
keyUsage = critical, {leaf_key_usage}
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, {leaf_key_usage}
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[selfsigned]
basicConstraints = critical, CA:FALSE
keyUsage = critical, {leaf_key_usage}
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


class CertGenerationError(RuntimeError):
    """An ``openssl`` invocation failed."""


@dataclass(frozen=True)
class Certs:
    """Paths of the generated PEM files (all keys unencrypted)."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    selfsigned_cert: Path
    selfsigned_key: Path
    wronghost_cert: Path
    wronghost_key: Path
    capath: Path


def _openssl(*args: str | os.PathLike[str], cwd: Path) -> str:
    cmd = ["openssl", *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CertGenerationError(
            f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr.strip()}"
        )
    return proc.stdout


def _genkey(path: Path, key_type: str) -> None:
    if key_type == "ec":
        opts = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    else:
        opts = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    _openssl("genpkey", *opts, "-out", path, cwd=path.parent)


def _serial() -> str:
    # Distinct random serials: verifiers may reject two certs from one issuer
    # with the same serial, and this avoids a shared serial file.
    return str(secrets.randbits(63) | 1)


def _issue(
    d: Path, config: Path, name: str, subject: str, section: str, key_type: str
) -> tuple[Path, Path]:
    """Create ``name.key`` and ``name.pem`` signed by the CA in ``d``."""
    key, cert, csr = d / f"{name}.key", d / f"{name}.pem", d / f"{name}.csr"
    _genkey(key, key_type)
    _openssl("req", "-new", "-config", config, "-key", key, "-subj", subject,
             "-out", csr, cwd=d)
    _openssl("x509", "-req", "-in", csr, "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
             "-set_serial", _serial(), "-days", _DAYS, "-sha256",
             "-extfile", config, "-extensions", section, "-out", cert, cwd=d)
    csr.unlink()
    return cert, key


def _self_signed(
    d: Path, config: Path, name: str, subject: str, section: str, key_type: str
) -> tuple[Path, Path]:
    """Create ``name.key`` and a self-signed ``name.pem``."""
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    _genkey(key, key_type)
    _openssl("req", "-new", "-x509", "-config", config, "-key", key, "-subj", subject,
             "-set_serial", _serial(), "-days", _DAYS, "-sha256",
             "-extensions", section, "-out", cert, cwd=d)
    return cert, key


def _make_capath(capath: Path, ca_cert: Path) -> None:
    """Populate an OpenSSL hashed CA directory holding only ``ca_cert``."""
    capath.mkdir(exist_ok=True)
    shutil.copyfile(ca_cert, capath / "ca.pem")
    try:
        _openssl("rehash", capath, cwd=capath)
    except CertGenerationError:
        pass  # older/stripped openssl builds lack `rehash`; link by hand below
    if any(capath.glob("*.0")):
        return
    subject_hash = _openssl("x509", "-hash", "-noout", "-in", ca_cert, cwd=capath).strip()
    (capath / f"{subject_hash}.0").symlink_to("ca.pem")


def make_certs(directory: Path, key_type: str = "ec") -> Certs:
    """Generate the CA, server, client, self-signed and wrong-host certificates.

    ``key_type`` is ``"ec"`` (P-256, fast) or ``"rsa"`` (2048 bits).
    """
    if key_type not in ("ec", "rsa"):
        raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    # RSA keys can also encipher (TLS 1.2 RSA key exchange); EC keys only sign.
    usage = "digitalSignature" if key_type == "ec" else "digitalSignature, keyEncipherment"
    config = d / "openssl.cnf"
    config.write_text(_CONFIG.format(leaf_key_usage=usage))

    ca_cert, ca_key = _self_signed(d, config, "ca", "/CN=HTTP Test CA", "ca", key_type)
    server_cert, server_key = _issue(d, config, "server", "/CN=localhost", "server", key_type)
    client_cert, client_key = _issue(d, config, "client", "/CN=test-client", "client", key_type)
    wrong_cert, wrong_key = _issue(
        d, config, "wronghost", "/CN=wrong.example", "wronghost", key_type
    )
    self_cert, self_key = _self_signed(
        d, config, "selfsigned", "/CN=127.0.0.1", "selfsigned", key_type
    )
    capath = d / "capath"
    _make_capath(capath, ca_cert)

    return Certs(
        directory=d,
        ca_cert=ca_cert,
        ca_key=ca_key,
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        selfsigned_cert=self_cert,
        selfsigned_key=self_key,
        wronghost_cert=wrong_cert,
        wronghost_key=wrong_key,
        capath=capath,
    )


# A server certificate for any subjectAltName (see issue_cert).
_LEAF_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, {leaf_key_usage}
extendedKeyUsage = serverAuth
subjectAltName = {alt_names}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def issue_cert(
    certs: Certs,
    name: str,
    alt_names: str,
    directory: Path | None = None,
    subject: str | None = None,
    key_type: str = "ec",
) -> tuple[Path, Path]:
    """A server certificate signed by the test CA of ``certs`` for
    ``alt_names`` (openssl's subjectAltName syntax: ``"IP:10.213.1.2"``,
    ``"IP:127.0.0.1, DNS:localhost"``), so a client trusting
    ``certs.capath`` verifies it.  Writes ``name.pem`` and ``name.key`` in
    ``directory`` (default: the certificates' directory); returns
    ``(cert, key)``."""
    d = Path(directory) if directory is not None else certs.directory
    d.mkdir(parents=True, exist_ok=True)
    usage = "digitalSignature" if key_type == "ec" else "digitalSignature, keyEncipherment"
    config = d / f"{name}.cnf"
    config.write_text(_LEAF_CONFIG.format(leaf_key_usage=usage, alt_names=alt_names))
    key, cert, csr = d / f"{name}.key", d / f"{name}.pem", d / f"{name}.csr"
    _genkey(key, key_type)
    _openssl("req", "-new", "-config", config, "-key", key, "-subj", subject or f"/CN={name}",
             "-out", csr, cwd=d)
    _openssl("x509", "-req", "-in", csr, "-CA", certs.ca_cert, "-CAkey", certs.ca_key,
             "-set_serial", _serial(), "-days", _DAYS, "-sha256",
             "-extfile", config, "-extensions", "leaf", "-out", cert, cwd=d)
    csr.unlink()
    return cert, key


# `openssl ca` reads its database settings from here; the certificate's
# extensions still come from the [server] section of the main config.
_CA_CONFIG = """\
[ca]
default_ca = backdating_ca

[backdating_ca]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no

[policy_any]
commonName = supplied
"""


def make_expired_cert(
    certs: Certs,
    name: str = "expired",
    startdate: str = "20200101000000Z",
    enddate: str = "20200102000000Z",
    key_type: str = "ec",
) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1/localhost, issued by the test CA,
    valid only from ``startdate`` to ``enddate`` (default: one day in 2020).

    ``openssl x509 -req`` cannot back-date in OpenSSL 3.0 (no ``-not_before``
    / ``-not_after`` before 3.4), so this goes through ``openssl ca`` with a
    throw-away database.  Returns ``(cert, key)``.
    """
    d = certs.directory
    work = d / f"{name}-ca"
    work.mkdir(exist_ok=True)
    (work / "ca.cnf").write_text(_CA_CONFIG)
    (work / "index.txt").write_text("")
    (work / "serial").write_text(f"{secrets.randbits(63) | 1:016X}\n")
    key, cert, csr = d / f"{name}.key", d / f"{name}.pem", work / f"{name}.csr"
    _genkey(key, key_type)
    _openssl("req", "-new", "-config", d / "openssl.cnf", "-key", key,
             "-subj", "/CN=localhost", "-out", csr, cwd=work)
    _openssl("ca", "-batch", "-config", work / "ca.cnf", "-cert", certs.ca_cert,
             "-keyfile", certs.ca_key, "-in", csr, "-out", cert, "-notext",
             "-startdate", startdate, "-enddate", enddate,
             "-extfile", d / "openssl.cnf", "-extensions", "server", cwd=work)
    return cert, key


def server_context(
    certfile: Path, keyfile: Path, require_client_cert_ca: Path | None = None
) -> ssl.SSLContext:
    """Server-side TLS context; demands a client cert from the given CA if set."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    # The server only speaks HTTP/1.1; advertising it lets ALPN-using clients
    # settle on http/1.1 instead of guessing.
    ctx.set_alpn_protocols(["http/1.1"])
    if require_client_cert_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=require_client_cert_ca)
    return ctx
