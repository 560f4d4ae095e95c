"""HTTPS: ``serve --tls-cert --tls-key``, with a CA and certificates the test makes (cryptography).

The server is a process of its own (``serving``) on 127.0.0.1; every client checks its
certificate against the test's CA, given the way that client's HTTP library takes it: urllib an
``SSLContext``, curl ``--cacert``, target-stitch 4.0.3 (aiohttp, Python's ``ssl``) the
``SSL_CERT_FILE`` variable, stitchclient 1.0.1 (requests) ``REQUESTS_CA_BUNDLE``. Each client is
also run without the CA, and must then fail on the certificate: verification is really on. Every
push is read back. A certificate or key that cannot serve is one line at start-up, no traceback.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from importapi_lite import Settings
from importapi_lite.cli import main
from importapi_lite.serve import tls_context
from importapi_lite.settings import SettingError

from .clients.harness import (
    CLIENTS,
    STITCHCLIENT_ROWS,
    TARGET_STITCH_4,
    batch_urls_config,
    client_env,
    install_clients,
    singer_stream,
    write_config,
)
from .helpers import CLIENT_ID, db_rows, free_port, make_token, record, serving

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# Where each HTTP library looks for trusted certificates besides its argument: kept out of the
# clients' environment, so that only what a test gives them counts.
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


# --- the certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA's certificate: what clients are told to trust
    cert: Path  # the server's, for 127.0.0.1 and localhost, issued by the CA
    key: Path
    other_key: Path  # a key of no certificate here
    encrypted_key: Path  # the server's key under a passphrase

    def args(self) -> tuple[str, ...]:
        return ("--tls-cert", str(self.cert), "--tls-key", str(self.key))

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def make_pki(folder: Path) -> Pki:
    """A CA and a server certificate it issued, with the extensions strict verifiers want
    (key usages, key identifiers, the server's names as subject alternative names)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("importapi-lite test CA"))
        .issuer_name(_name("importapi-lite test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(
        ca=folder / "ca.pem",
        cert=folder / "server.pem",
        key=folder / "server-key.pem",
        other_key=folder / "other-key.pem",
        encrypted_key=folder / "server-key-encrypted.pem",
    )
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(_pem_key(server_key))
    pki.other_key.write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    pki.encrypted_key.write_bytes(_pem_key(server_key, b"a passphrase"))
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- talking to the server ---------------------------------------------------------------------


def push(url: str, token: str, records: list[dict[str, object]], tls: ssl.SSLContext) -> int:
    request = urllib.request.Request(
        url + "/v2/import/push",
        data=json.dumps(records).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30, context=tls) as response:
        return int(response.status)


def without_ca_variables() -> dict[str, str]:
    return {k: v for k, v in client_env().items() if k not in CA_VARIABLES}


# --- settings and start-up ---------------------------------------------------------------------


def test_a_certificate_without_its_key_is_a_setting_error_naming_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SettingError, match=r"^tls_cert is set but not tls_key \(--tls-key or "):
        Settings(tls_cert=tmp_path / "cert.pem")
    with pytest.raises(SettingError, match=r"^tls_key is set but not tls_cert \(--tls-cert or "):
        Settings(tls_key=tmp_path / "key.pem")
    with pytest.raises(ValueError, match=r"^IMPORTAPI_LITE_TLS_KEY='k.pem': tls_key is set but"):
        Settings.from_env({"IMPORTAPI_LITE_TLS_KEY": "k.pem"})
    # The flag and the variable make a pair; neither is plain HTTP.
    paired = Settings.from_env({"IMPORTAPI_LITE_TLS_KEY": "k.pem"}, tls_cert=Path("c.pem"))
    assert (paired.tls_cert, paired.tls_key, paired.scheme) == (
        Path("c.pem"),
        Path("k.pem"),
        "https",
    )
    assert Settings().scheme == "http" and tls_context(Settings()) is None

    assert main(["serve", "--tls-cert", "cert.pem"], environ={}) == 2
    err = capsys.readouterr().err
    assert err.startswith("importapi-lite: tls_cert is set but not tls_key (--tls-key or ")
    assert err.count("\n") == 1


def test_the_server_context_is_tls_1_2_at_least_and_speaks_http_1_1(pki: Pki) -> None:
    context = tls_context(Settings(tls_cert=pki.cert, tls_key=pki.key))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # clients are not asked for a certificate
    assert context.options & ssl.OP_NO_COMPRESSION


STARTUP_FAILURES = {
    "missing certificate": (
        lambda p: ("--tls-cert", str(p.cert) + ".missing", "--tls-key", str(p.key)),
        "cannot read the TLS certificate {cert}.missing: No such file or directory",
    ),
    "missing key": (
        lambda p: ("--tls-cert", str(p.cert), "--tls-key", str(p.key) + ".missing"),
        "cannot read the TLS key {key}.missing: No such file or directory",
    ),
    "a folder for a key": (
        lambda p: ("--tls-cert", str(p.cert), "--tls-key", str(p.key.parent)),
        "cannot read the TLS key {folder}: Is a directory",
    ),
    "the key of another certificate": (
        lambda p: ("--tls-cert", str(p.cert), "--tls-key", str(p.other_key)),
        "the TLS key {other_key} is not the key of the certificate {cert}",
    ),
    "a key for a certificate": (
        lambda p: ("--tls-cert", str(p.key), "--tls-key", str(p.key)),
        "no PEM certificate in {key}",
    ),
    "a certificate for a key": (
        lambda p: ("--tls-cert", str(p.cert), "--tls-key", str(p.cert)),
        "no PEM private key in {cert}",
    ),
    "an encrypted key": (
        lambda p: ("--tls-cert", str(p.cert), "--tls-key", str(p.encrypted_key)),
        "the TLS key {encrypted_key} is encrypted: give the key without a passphrase",
    ),
}


@pytest.mark.serve
@pytest.mark.parametrize("case", STARTUP_FAILURES)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_certificate_or_key_that_cannot_serve_is_one_line_at_startup(
    pki: Pki, tmp_path: Path, case: str, processes: str
) -> None:
    args, expected = STARTUP_FAILURES[case]
    data_dir = tmp_path / "data"
    ran = subprocess.run(
        [sys.executable, "-m", "importapi_lite", "serve", "--port", str(free_port())]
        + ["--data-dir", str(data_dir), "--processes", processes, *args(pki)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")},
    )
    paths = {k: str(v) for k, v in vars(pki).items()} | {"folder": str(pki.key.parent)}
    assert (ran.returncode, ran.stdout) == (1, "")
    assert ran.stderr == f"importapi-lite: {expected.format(**paths)}\n"
    assert not data_dir.exists()  # refused before anything was made


# --- HTTPS -------------------------------------------------------------------------------------


@pytest.mark.serve
def test_a_push_over_https_lands_and_plain_http_to_the_port_fails_cleanly(
    pki: Pki, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    token = make_token(Settings(data_dir=data_dir))
    with serving(data_dir, *pki.args(), "--workers", "0", tls=pki.client_context()) as server:
        assert server.url.startswith("https://127.0.0.1:")
        # By name too: the certificate holds localhost as well as 127.0.0.1.
        url = f"https://localhost:{server.port}"
        rows = [record("secure", 1, {"id": 1, "name": "Finn"})]
        assert push(url, token, rows, pki.client_context()) == 201

        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.selected_alpn_protocol() is None  # none offered, none chosen
        offering = pki.client_context()  # as curl does: HTTP/2 if it can, and it cannot
        offering.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with offering.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == "http/1.1"

        # A client that does not trust the CA is refused the certificate, and nothing is sent.
        with pytest.raises(urllib.error.URLError) as refused:
            push(server.url, token, rows, ssl.create_default_context())
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)

        # Plain HTTP to the HTTPS port: an error at once, not a hang; the server carries on.
        with pytest.raises((http.client.HTTPException, OSError)):
            urllib.request.urlopen(
                server.url.replace("https:", "http:") + "/v2/import/status", timeout=10
            )
        assert (
            push(server.url, token, [record("secure", 2, {"id": 2})], pki.client_context()) == 201
        )

    assert db_rows(Settings(data_dir=data_dir), "secure") == [
        {"id": 1, "name": "Finn"},
        {"id": 2, "name": None},
    ]
    assert "Traceback" not in server.log.read_text()


@pytest.mark.serve
def test_every_process_of_several_serves_https(pki: Pki, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token = make_token(Settings(data_dir=data_dir))
    args = (*pki.args(), "--processes", "2", "--workers", "0")
    with serving(data_dir, *args, tls=pki.client_context()) as server:
        # A connection each: the kernel spreads them over both processes (all 24 on one of the
        # two has odds of 1 in 8 million), so each must have loaded the certificate.
        for i in range(24):
            assert (
                push(server.url, token, [record("many", i, {"id": i})], pki.client_context()) == 201
            )
    assert db_rows(Settings(data_dir=data_dir), "many") == [{"id": i} for i in range(24)]
    log = server.log.read_text()
    assert "https://127.0.0.1:" in log and "(2 processes)" in log
    assert "Traceback" not in log and "starting it again" not in log


@pytest.mark.serve
def test_the_readmes_https_commands_work_as_written(tmp_path: Path) -> None:
    """The README's HTTPS block, as a user runs it: openssl makes a self-signed certificate, the
    server starts with it (on a free port, not 8443), and the curl its banner prints pushes."""
    section = README.split("\n## HTTPS\n", 1)[1]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    make_cert, serve = script.split("\nimportapi-lite serve ")
    subprocess.run(["bash", "-euo", "pipefail", "-c", make_cert], cwd=tmp_path, check=True)
    port = free_port()
    assert "--port 8443" in serve
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    command = "exec importapi-lite serve " + serve.replace("8443", str(port))
    process = subprocess.Popen(
        ["bash", "-c", command], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not any(line.strip().endswith("}}]'") for line in lines):
            line = process.stdout.readline()
            assert line, "the server exited:\n" + "".join(lines)
            lines.append(line)
        banner = "".join(lines)
        assert f"serving the Stitch Import API v2 at https://127.0.0.1:{port}\n" in banner
        assert f"admin API: https://127.0.0.1:{port}/_importapi/v1/" in banner
        curl = banner[banner.index("curl -sS") :]
        assert curl.startswith(f"curl -sS --cacert cert.pem -X POST https://127.0.0.1:{port}/")
        wait_for_https(f"https://127.0.0.1:{port}", tmp_path / "cert.pem", process)
        clean = {k: v for k, v in os.environ.items() if k not in CA_VARIABLES}
        pushed = subprocess.run(
            ["bash", "-c", curl], cwd=tmp_path, env=clean, capture_output=True, text=True
        )
        assert pushed.stdout == '{"status":"OK","message":"Batch Accepted!"}', pushed.stderr
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    rows = db_rows(Settings(data_dir=tmp_path / "data"), "customers")
    assert rows == [{"id": 1, "name": "Finn"}]


def wait_for_https(url: str, ca: Path, process: subprocess.Popen[str]) -> None:
    """The banner is printed just before the socket is bound: wait for the status endpoint."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/v2/import/status", timeout=2, context=context).close()
            return
        except OSError:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)


# --- the official clients over HTTPS -----------------------------------------------------------


@pytest.fixture(scope="module")
def clients_bin() -> Path:
    return install_clients()[TARGET_STITCH_4]


@pytest.mark.clients
@pytest.mark.serve
def test_target_stitch_sends_batches_over_https_trusting_the_ca_in_ssl_cert_file(
    pki: Pki, tmp_path: Path, clients_bin: Path
) -> None:
    data_dir = tmp_path / "data"
    token = make_token(Settings(data_dir=data_dir))
    with serving(data_dir, *pki.args(), tls=pki.client_context()) as server:
        config = write_config(
            tmp_path, batch_urls_config(server.url + "/v2/import/batch", token, CLIENT_ID)
        )

        def target_stitch(env: dict[str, str], ids: list[int]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(clients_bin / "target-stitch"), "-c", str(config)],
                input=singer_stream(1, ids),
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )

        # target-stitch posts with aiohttp, whose verifying context is Python's default one:
        # OpenSSL reads SSL_CERT_FILE. Without it the system's CAs do not know ours.
        refused = target_stitch(without_ca_variables(), [9])
        assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        assert db_rows(Settings(data_dir=data_dir), "accounts") == []

        ran = target_stitch(without_ca_variables() | {"SSL_CERT_FILE": str(pki.ca)}, [0, 1, 2])
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip().splitlines()[-1] == '{"bookmarks": {"accounts": {"version": 1}}}'
    rows = db_rows(Settings(data_dir=data_dir), "accounts", system=True)
    assert [(r["id"], r["name"], r["_sdc_table_version"]) for r in rows] == [
        (0, "a0-v1", 1),
        (1, "a1-v1", 1),
        (2, "a2-v1", 1),
    ]


@pytest.mark.clients
@pytest.mark.serve
def test_stitchclient_pushes_transit_over_https_trusting_the_ca_in_requests_ca_bundle(
    pki: Pki, tmp_path: Path, clients_bin: Path
) -> None:
    data_dir = tmp_path / "data"
    token = make_token(Settings(data_dir=data_dir))
    with serving(data_dir, *pki.args(), tls=pki.client_context()) as server:
        url = server.url + "/v2/import/push"

        def stitchclient(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(clients_bin / "python"), str(CLIENTS / "stitchclient_push.py")]
                + [url, token, str(CLIENT_ID)],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )

        # stitchclient posts with requests, which trusts certifi's CAs unless
        # REQUESTS_CA_BUNDLE names a file (SSL_CERT_FILE means nothing to it).
        refused = stitchclient(without_ca_variables() | {"SSL_CERT_FILE": str(pki.ca)})
        assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        assert db_rows(Settings(data_dir=data_dir), "pc") == []

        ran = stitchclient(without_ca_variables() | {"REQUESTS_CA_BUNDLE": str(pki.ca)})
        assert ran.returncode == 0, ran.stderr
    assert db_rows(Settings(data_dir=data_dir), "pc") == STITCHCLIENT_ROWS
