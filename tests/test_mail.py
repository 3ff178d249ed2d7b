"""Mailing the weekly report through a real local SMTP server (aiosmtpd): what arrives, TLS, AUTH, retries."""

from __future__ import annotations

import base64
import datetime as dt
import email
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from collector.config import ConfigError, ReportConfig, SmtpConfig
from collector.render.email import Report
from collector.render.email import mail as mailer
from collector.render.email.html import render_html
from collector.render.email.text import render_text
from collector.weekly_report import build_report
from tests.mapper_cases import at
from tests.test_report import W10, images_of, tiny_stream

USER, PASSWORD = "vsm-mailer", "s3cret-Pa55word!"
TO, CC = ("brenda@petclinic.example",), ("team@petclinic.example", "lead@petclinic.example")


def free_port() -> int:
    """A TCP port nobody listens on right now (aiosmtpd cannot bind port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps what arrives and can refuse recipients or defer the first DATA."""

    def __init__(self, refuse: tuple[str, ...] = (), defer_first: bool = False) -> None:
        self.refuse = refuse
        self.defer_first = defer_first
        self.data_attempts = 0
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        """Accept a recipient unless told to refuse it."""
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: recipient rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message (after a 421 the first time, when asked to)."""
        self.data_attempts += 1
        if self.defer_first and self.data_attempts == 1:
            return "421 4.3.2 Service not available, try again later"
        self.envelopes.append(envelope)
        return "250 2.0.0 queued"

    def message(self) -> EmailMessage:
        """The one message that arrived, parsed."""
        assert len(self.envelopes) == 1, f"{len(self.envelopes)} messages arrived"
        parsed = email.message_from_bytes(self.envelopes[0].content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class Authenticator:
    """Checks LOGIN/PLAIN credentials and remembers every attempt."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []
        self.sessions: set[int] = set()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        """Succeed only for USER / PASSWORD."""
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.attempts.append((login, password))
        self.sessions.add(id(session))
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False)


@pytest.fixture(scope="module")
def report() -> Report:
    """A small report with both charts (the golden stream of the mapper tests, 2026-W10)."""
    built = build_report(tiny_stream().con, W10, now=at(24 * 8))
    assert len(built.charts) == 2
    return built


@pytest.fixture
def server() -> Iterator[Callable[..., tuple[Inbox, int]]]:
    """Start aiosmtpd servers on free ports on 127.0.0.1; all are stopped after the test."""
    running: list[Controller] = []

    def start(inbox: Inbox | None = None, port: int | None = None, **smtp: Any) -> tuple[Inbox, int]:
        inbox = inbox or Inbox()
        port = port or free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, **smtp)
        controller.start()
        running.append(controller)
        return inbox, port

    yield start
    for controller in running:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        _certificate_with_cryptography(cert, key)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl CLI is available")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
                        "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
    return cert, key


def _certificate_with_cryptography(cert: Path, key: Path) -> None:
    """Write a self-signed EC certificate with the cryptography package."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    built = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
             .not_valid_after(now + dt.timedelta(days=2))
             .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                         x509.DNSName("localhost")]), critical=False)
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .sign(private, hashes.SHA256()))
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """The server side TLS context for the test certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def config(port: int, **smtp: Any) -> ReportConfig:
    """The report config for a local server on port."""
    settings = {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5.0, **smtp}
    return ReportConfig(to=TO, cc=CC, sender="vsm@petclinic.example",
                        subject="Flow report {week} for Pet Clinic", smtp=SmtpConfig(**settings))


def assert_no_secret(raw: bytes, *texts: str) -> None:
    """Neither the password nor its base64 forms appear anywhere."""
    forms = [PASSWORD, base64.b64encode(PASSWORD.encode()).decode(),
             base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()]
    for form in forms:
        assert form.encode() not in raw
        for text in texts:
            assert form not in text


def test_the_report_arrives_intact(report: Report, server: Callable[..., tuple[Inbox, int]]) -> None:
    inbox, port = server()
    mailer_config = config(port)
    from collector.weekly_report import send_report

    send_report(report, mailer_config)
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "vsm@petclinic.example"
    assert envelope.rcpt_tos == [*TO, *CC]
    message = inbox.message()
    assert message["Subject"] == "Flow report 2026-W10 for Pet Clinic"
    assert message["To"] == TO[0] and message["Cc"] == ", ".join(CC)
    assert message.get_content_type() == "multipart/alternative"
    plain, related = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.iter_parts()
    assert html_part.get_content_type() == "text/html"
    html, text = html_part.get_content(), plain.get_content()
    # every inline image is a PNG with a Content-ID that the HTML references, and has alt text
    assert len(images) == len(report.charts) == 2
    for image in images:
        assert image.get_content_type() == "image/png"
        assert image.get_content_disposition() == "inline"
        assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
        assert f'src="cid:{str(image["Content-ID"]).strip("<>")}"' in html
    imgs = images_of(html)
    assert len(imgs) == 2 and all(i["alt"] and len(i["alt"] or "") > 40 for i in imgs)
    assert "data:image" not in html
    # the same key numbers in both parts (hand-computed in test_report: lead time 10h, release 57%)
    shown = unescape(html)
    for number in (report.headline, "10h 00m", "27%", "57%", "acme/web#1",
                   *[t.text for t in report.tiles], *[t.change_text for t in report.tiles if t.change_text]):
        assert number in text and number in shown, number
    assert text.replace("\r\n", "\n") == render_text(report)


def test_starttls_with_auth_and_a_certificate_checked_against_the_trust_store(
        report: Report, server: Callable[..., tuple[Inbox, int]], certificate: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authenticator = Authenticator()
    inbox, port = server(tls_context=server_tls(certificate), require_starttls=True,
                         authenticator=authenticator, auth_require_tls=True)
    monkeypatch.setenv("VSM_SMTP_USER", USER)
    monkeypatch.setenv("VSM_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the default context trusts the test CA
    from collector.weekly_report import send_report

    send_report(report, config(port, security="starttls", user_env="VSM_SMTP_USER",
                               password_env="VSM_SMTP_PASSWORD"))
    assert authenticator.attempts == [(USER, PASSWORD)]
    assert inbox.envelopes[0].rcpt_tos == [*TO, *CC]
    assert_no_secret(inbox.envelopes[0].content, caplog.text)


def test_implicit_tls(report: Report, server: Callable[..., tuple[Inbox, int]],
                      certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, port = server(ssl_context=server_tls(certificate))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    from collector.weekly_report import send_report

    send_report(report, config(port, security="ssl"))
    assert inbox.message()["Subject"] == "Flow report 2026-W10 for Pet Clinic"


def test_untrusted_certificate_is_a_permanent_error(report: Report, server: Callable[..., tuple[Inbox, int]],
                                                    certificate: tuple[Path, Path]) -> None:
    _, port = server(tls_context=server_tls(certificate), require_starttls=True)
    from collector.weekly_report import send_report

    refused = r"^mail to 127\.0\.0\.1:\d+ \(starttls\) failed: SSLCertVerificationError"
    with pytest.raises(mailer.MailError, match=refused):
        send_report(report, config(port, security="starttls"), backoff_s=0)


def test_wrong_password_fails_at_once_without_showing_it(
        report: Report, server: Callable[..., tuple[Inbox, int]], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authenticator = Authenticator()
    inbox, port = server(authenticator=authenticator, auth_require_tls=False)  # no TLS: AUTH over plain text
    monkeypatch.setenv("VSM_SMTP_USER", USER)
    monkeypatch.setenv("VSM_SMTP_PASSWORD", "not-" + PASSWORD)
    from collector.weekly_report import send_report

    with pytest.raises(mailer.MailError) as error:
        send_report(report, config(port, user_env="VSM_SMTP_USER", password_env="VSM_SMTP_PASSWORD"))
    # smtplib tries each mechanism the server offers, all in one session: 535 is permanent, no reconnect
    assert len(authenticator.sessions) == 1 and authenticator.attempts and not inbox.envelopes
    message = str(error.value)
    assert "\n" not in message and "535" in message
    assert "not-" + PASSWORD not in message and "not-" + PASSWORD not in caplog.text


def test_missing_password_variable_is_a_config_error(report: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSM_SMTP_USER", USER)
    monkeypatch.delenv("VSM_SMTP_PASSWORD", raising=False)
    from collector.weekly_report import send_report

    with pytest.raises(ConfigError, match="VSM_SMTP_PASSWORD is not set"):
        send_report(report, config(free_port(), user_env="VSM_SMTP_USER", password_env="VSM_SMTP_PASSWORD"))


def test_a_421_is_retried(report: Report, server: Callable[..., tuple[Inbox, int]],
                          caplog: pytest.LogCaptureFixture) -> None:
    inbox, port = server(Inbox(defer_first=True))
    from collector.weekly_report import send_report

    send_report(report, config(port), backoff_s=0.01)
    assert inbox.data_attempts == 2
    assert inbox.message()["Subject"] == "Flow report 2026-W10 for Pet Clinic"
    assert "421 4.3.2 Service not available" in caplog.text and "retrying" in caplog.text


def test_a_refused_connection_is_retried_until_the_server_is_up(
        report: Report, server: Callable[..., tuple[Inbox, int]]) -> None:
    port = free_port()
    waits: list[float] = []
    inbox = Inbox()

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        server(inbox, port)  # the mail server comes up during the first backoff

    message = mailer.compose("hello", "vsm@petclinic.example", TO, (), "text", render_html(report),
                             [mailer.InlineImage(c.cid, c.png, c.filename) for c in report.charts])
    mailer.send(message, config(port).smtp, backoff_s=1.5, sleep=sleep)
    assert waits == [1.5]
    assert inbox.message()["Subject"] == "hello"


def test_gives_up_after_the_last_attempt(report: Report) -> None:
    waits: list[float] = []
    message = mailer.compose("hello", "vsm@petclinic.example", TO, (), "text", "<p>html</p>")
    with pytest.raises(mailer.MailError, match=r"failed after 3 attempts: ConnectionRefusedError"):
        mailer.send(message, config(free_port()).smtp, attempts=3, backoff_s=2.0, sleep=waits.append)
    assert waits == [2.0, 4.0]  # exponential backoff between the attempts


def test_a_rejected_recipient_is_a_clear_permanent_error(report: Report,
                                                         server: Callable[..., tuple[Inbox, int]]) -> None:
    inbox, port = server(Inbox(refuse=TO))
    message = mailer.compose("hello", "vsm@petclinic.example", TO, (), "text", "<p>html</p>")
    with pytest.raises(mailer.MailError) as error:
        mailer.send(message, config(port).smtp, sleep=lambda _: pytest.fail("a 550 must not be retried"))
    assert str(error.value) == (f"mail to 127.0.0.1:{port} (none) failed: recipients refused: "
                                f"{TO[0]} (550 5.1.1 <{TO[0]}>: recipient rejected)")
    assert not inbox.envelopes
    # one refused among several: the others still get it, and the refusal is logged
    inbox, port = server(Inbox(refuse=(CC[0],)))
    mailer.send(mailer.compose("hello", "vsm@petclinic.example", TO, CC, "text", "<p>html</p>"),
                config(port).smtp)
    assert inbox.envelopes[0].rcpt_tos == [TO[0], CC[1]]
