"""A throw-away certificate authority for TLS tests, made with the `openssl` command line tool.

One CA signs a server certificate for `localhost` and 127.0.0.1, as a corporate or TLS-inspecting CA
would sign the certificates its clients must learn to trust.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_EXTENSIONS = """\
subjectAltName = DNS:localhost, IP:127.0.0.1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class CertAuthority:
    ca_path: Path  # the CA certificate (PEM): what clients are told to trust
    cert_path: Path  # the server's certificate, signed by the CA
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def make_test_ca(folder: Path) -> CertAuthority | None:
    """None where there is no `openssl` (the tests that need one skip and say so)."""
    if shutil.which("openssl") is None:
        return None
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    extensions = folder / "server.ext"
    extensions.write_text(SERVER_EXTENSIONS)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=llm-scope test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(extensions), "-out", str(cert))  # fmt: skip
    return CertAuthority(ca, cert, key)
