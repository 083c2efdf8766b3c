"""The operator commands (trust, release, device, rollout) as a user runs them against a real server,
``mcuota serve``'s own start-up errors, and HTTPS with a self-signed certificate."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from server_helpers import LiveServer

from mcuota.image.keys import PrivateKey
from mcuota.netutil import free_port

pytest_plugins = ["server_fixtures"]


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mcuota")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mcuota.cli.main"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MCUOTA_")}
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, check=False,
                          env={**clean, **(env or {})}, timeout=60)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[str], message: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert message in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("verb", [["serve"], ["trust", "add"], ["trust", "list"], ["release", "upload"],
                                  ["release", "list"], ["device", "add"], ["device", "show"],
                                  ["rollout", "create"], ["rollout", "status"], ["rollout", "cancel"]])
def test_help_ends_with_an_example(verb: list[str]) -> None:
    lines = ok(run(*verb, "--help")).rstrip().splitlines()
    assert lines[-2] == "example:"
    assert lines[-1].startswith("  mcuota " + " ".join(verb))


def test_operator_session(live_server_factory: Callable[..., LiveServer], tmp_path: Path,
                          signing_key: PrivateKey,
                          image: Callable[..., bytes]) -> None:
    server = live_server_factory()
    conn = ["--server", server.url, "--data-dir", str(server.data_dir)]     # the key comes from the data dir
    pub = tmp_path / "pub.pem"
    pub.write_bytes(signing_key.public().pem())
    assert "ed25519" in ok(run("trust", "add", pub, *conn))
    keys = json.loads(ok(run("trust", "list", "--json", *conn)))
    assert keys[0]["key_hash"] == signing_key.public().key_hash.hex()

    signed = tmp_path / "app-2.0.0.bin"
    signed.write_bytes(image("2.0.0"))
    upload = run("release", "upload", signed, "--board", "f407", "--product", "widget", *conn)
    release_id = ok(upload).strip()
    assert release_id == "1"
    assert "uploaded release 1" in upload.stderr
    listed = json.loads(ok(run("release", "list", "--json", *conn)))
    assert listed[0]["version"] == "2.0.0"
    assert listed[0]["signed"]

    env = {"MCUOTA_URL": server.url, "MCUOTA_API_KEY": server.admin_key}    # the environment works too
    added = json.loads(ok(run("device", "add", "SN1", "--board", "f407", "--version", "1.0.0", "--tag",
                              "canary", "--json", env=env)))
    assert set(added) == {"serial", "token"}
    assert added["token"].startswith("mcd_")
    token = ok(run("device", "add", "SN2", "--board", "f407", env=env)).strip()
    assert token.startswith("mcd_")
    assert len(token.splitlines()) == 1

    rollout = json.loads(ok(run("rollout", "create", "--release", release_id, "--tag", "canary", "--stages",
                                "1,10,50,100", "--halt-failure-rate", "0.1", "--min-attempts", "20", "--json",
                                env=env)))
    assert (rollout["stages"], rollout["tags"], rollout["targets"]) == ([1, 10, 50, 100], ["canary"], 1)
    checkin = httpx.post(f"{server.url}/api/v1/device/checkin", json={"serial": "SN1", "board": "f407",
                                                                      "version": "1.0.0"},
                         headers={"Authorization": f"Bearer {added['token']}"})
    assert checkin.json()["update"] is True
    assert "admitted 1" in ok(run("rollout", "status", str(rollout["id"]), env=env))
    assert json.loads(ok(run("rollout", "pause", str(rollout["id"]), "--json", env=env)))["state"] == "paused"
    assert "active" in ok(run("rollout", "resume", str(rollout["id"]), env=env))
    assert "cancelled" in ok(run("rollout", "cancel", str(rollout["id"]), env=env))
    shown = json.loads(ok(run("device", "show", "SN1", "--json", env=env)))
    assert [a["state"] for a in shown["attempts"]] == ["cancelled"]
    assert "SN2" in ok(run("device", "list", env=env))

    # failures: one line each, exit 2
    one_line_error(run("rollout", "resume", str(rollout["id"]), env=env),
                   "cannot resume a rollout that is cancelled")
    one_line_error(run("device", "show", "NOPE", env=env), "unknown device 'NOPE'")
    one_line_error(run("release", "upload", signed, "--board", "f407", env=env), "duplicate_version")
    tampered = tmp_path / "bad.bin"
    data = signed.read_bytes()
    tampered.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    one_line_error(run("release", "upload", tampered, "--board", "f407", env=env), "HTTP 422")
    one_line_error(run("device", "list", env={**env, "MCUOTA_API_KEY": "mca_wrong"}), "invalid API key")
    one_line_error(run("device", "list", "--server", server.url), "no API key")
    one_line_error(run("rollout", "create", "--release", "1", "--stages", "10,5", env=env),
                   "strictly increase")


def test_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(run("release", "list", "--server", url, "--api-key", "mca_x"), "cannot reach")
    assert url in line


def test_serve_start_up_errors(tmp_path: Path) -> None:
    one_line_error(run("serve", "--data-dir", tmp_path / "d", "--tls-cert", tmp_path / "none.pem",
                       "--tls-key", tmp_path / "none.key"), "none.pem does not exist")
    one_line_error(run("serve", "--data-dir", tmp_path / "d", "--tls-cert", tmp_path / "x.pem"), "both")
    one_line_error(run("serve", "--data-dir", tmp_path / "d", "--no-mqtt", "--database-url", "mysql://x/y"),
                   "unsupported database")
    one_line_error(run("serve", "--data-dir", tmp_path / "d", "--no-mqtt", "--database-url",
                       f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x"), "cannot open database")
    with httpx_listening() as port:
        one_line_error(run("serve", "--data-dir", tmp_path / "d", "--no-mqtt", "--port", str(port)),
                       f"cannot listen on 127.0.0.1:{port}")


class httpx_listening:
    """A port somebody already listens on."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# --- TLS -------------------------------------------------------------------------------------------

def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcuota test server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_with_a_self_signed_certificate(live_server_factory: Callable[..., LiveServer],
                                              tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = live_server_factory(tls_cert=cert, tls_key=key)
    assert server.url.startswith("https://")
    context = ssl.create_default_context(cafile=str(cert))
    assert httpx.get(f"{server.url}/healthz", verify=context).json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz")                     # not trusted without the certificate
    plain = server.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/healthz")
    boards = ok(run("device", "list", "--server", server.url, "--api-key", server.admin_key,
                    "--cacert", cert))
    assert "no devices" in boards
    one_line_error(run("device", "list", "--server", server.url, "--api-key", server.admin_key),
                   "cannot reach the update server at https://")
