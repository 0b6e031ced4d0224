"""`make notify` against a real SMTP server (aiosmtpd) started by each test, and the outbox."""

from __future__ import annotations

import email
import email.policy
import re
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pipeline.notify import NotifyError, SmtpSettings, notify
from tests.helpers import free_port, require_executable
from tests.pipeline import builders
from training.report_names import PLOT_FILES, PLOTS_DIR

ROOT = Path(__file__).resolve().parents[2]
# The AUTH tests run over plain TCP on loopback on purpose; aiosmtpd warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
USER, PASSWORD = "pipeline", "s3cret-for-tests"


@dataclass
class Inbox:
    """What the test SMTP server received."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    """Accept exactly USER / PASSWORD."""
    good = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER
            and auth_data.password.decode() == PASSWORD)
    return AuthResult(success=good, handled=False)


# Deadline for the SMTP server's start (aiosmtpd's default, 5 s, is short on a busy machine).
SMTP_READY_WITHIN = 60.0


@contextmanager
def running_smtp(**options: Any) -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port, stopped afterwards."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            ready_timeout=SMTP_READY_WITHIN, **options)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A plain SMTP server on a free loopback port."""
    with running_smtp() as server:
        yield server


@pytest.fixture
def auth_server() -> Iterator[tuple[Inbox, int]]:
    """An SMTP server that requires AUTH (over plain TCP: loopback only, test only)."""
    with running_smtp(authenticator=authenticator, auth_required=True,
                      auth_require_tls=False) as server:
        yield server


@pytest.fixture
def server_certificate(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a self-signed certificate made by openssl, and that cert."""
    openssl = require_executable("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


@pytest.fixture
def tls_server(server_certificate: tuple[ssl.SSLContext, Path]
               ) -> Iterator[tuple[Inbox, int, Path]]:
    """An SMTP server with STARTTLS (the self-signed certificate) and AUTH."""
    context, cert = server_certificate
    with running_smtp(tls_context=context, require_starttls=True,
                      authenticator=authenticator, auth_required=True) as (inbox, port):
        yield inbox, port, cert


@pytest.fixture
def ssl_server(server_certificate: tuple[ssl.SSLContext, Path]
               ) -> Iterator[tuple[Inbox, int, Path]]:
    """An SMTP server speaking TLS from the first byte (SMTPS, SMTP_TLS=ssl) with AUTH."""
    context, cert = server_certificate
    # auth_require_tls only knows STARTTLS; here every byte of the connection is TLS.
    with running_smtp(ssl_context=context, authenticator=authenticator, auth_required=True,
                      auth_require_tls=False) as (inbox, port):
        yield inbox, port, cert


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    """Settings for the test server: no TLS unless asked."""
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_TLS": "none",
            "NOTIFY_TO": "team@example.com, lead@example.com",
            "NOTIFY_FROM": "pipeline@example.com", "SMTP_TIMEOUT": "10", **extra}


def test_summary_is_delivered_as_html_with_a_text_alternative(tmp_path: Path,
                                                              smtp_server: tuple) -> None:
    inbox, port = smtp_server
    builders.green(tmp_path)
    assert notify(tmp_path, smtp_env(port)) is None
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["Subject"].startswith("credit-risk SUCCESS: model ")
    assert message["X-Pipeline-Status"] == "SUCCESS"
    assert sorted(inbox.envelopes[0].rcpt_tos) == ["lead@example.com", "team@example.com"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    markup = message.get_body(preferencelist=("html",)).get_content()
    assert "credit-risk pipeline: SUCCESS" in text
    # The page of summary.html, with each plot referred to by its inline part's Content-ID.
    page = (tmp_path / "summary.html").read_text()
    for name, content_id in inline_images(message).items():
        page = page.replace(f'src="plots/{name}"', f'src="cid:{content_id}"')
    assert markup.replace("\r\n", "\n") == page
    assert not (tmp_path / "outbox").exists()


def inline_images(message: EmailMessage) -> dict[str, str]:
    """File name -> Content-ID (without brackets) of each inline PNG part of a message."""
    return {part.get_filename(): part["Content-ID"].strip("<>") for part in message.walk()
            if part.get_content_type() == "image/png"}


def delivered(reports: Path, server: tuple[Inbox, int],
              build: Callable[[Path], None]) -> EmailMessage:
    """Build a reports directory, notify the test server, return the one message it got."""
    inbox, port = server
    build(reports)
    notify(reports, smtp_env(port))
    (message,) = inbox.messages
    return message


def test_plots_travel_as_inline_parts_the_html_refers_to(tmp_path: Path,
                                                         smtp_server: tuple) -> None:
    message = delivered(tmp_path, smtp_server, builders.green)
    html_part = message.get_body(preferencelist=("html",))
    related = next(part for part in message.walk()
                   if part.get_content_type() == "multipart/related")
    # multipart/alternative: text, then multipart/related (HTML first, then the images).
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain",
                                                                    "multipart/related"]
    parts = list(related.iter_parts())
    assert parts[0].get_content_type() == "text/html"
    images = inline_images(message)
    assert sorted(images) == sorted(PLOT_FILES)
    markup = html_part.get_content()
    sources = re.findall(r'<img src="([^"]+)"', markup)
    assert sources == [f"cid:{images[name]}" for name in PLOT_FILES]  # in the summary's order
    assert len(set(images.values())) == len(images)
    for part in parts[1:]:
        assert part.get_content_disposition() == "inline"
        assert part.get_content() == (tmp_path / PLOTS_DIR / part.get_filename()).read_bytes()


def test_without_plots_the_mail_is_text_and_html_only(tmp_path: Path,
                                                      smtp_server: tuple) -> None:
    message = delivered(tmp_path, smtp_server, builders.red_data_tests)
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert "<img" not in message.get_body(preferencelist=("html",)).get_content()


def test_red_summary_subject_names_the_failed_stage(tmp_path: Path, smtp_server: tuple) -> None:
    inbox, port = smtp_server
    builders.red_data_tests(tmp_path)
    notify(tmp_path, smtp_env(port))
    assert inbox.messages[0]["Subject"] == ("credit-risk FAILURE: stage 'data tests' failed "
                                            "(local run)")


def test_login_without_tls_is_refused_before_connecting(tmp_path: Path) -> None:
    # A server that would accept the login in clear: the refusal must be the client's own.
    attempts: list[str] = []

    def recording(*args: Any) -> AuthResult:
        attempts.append(args[3])
        return authenticator(*args)

    with running_smtp(authenticator=recording, auth_required=True,
                      auth_require_tls=False) as (inbox, port):
        builders.green(tmp_path)
        with pytest.raises(NotifyError, match=r"SMTP_USER='pipeline' with SMTP_TLS=none "
                                              r"would send the password in clear"):
            notify(tmp_path, smtp_env(port, SMTP_USER=USER, SMTP_PASSWORD=PASSWORD))
    assert attempts == [] and inbox.messages == []


def run_notify_cli(reports_dir: Path, **settings: str) -> subprocess.CompletedProcess:
    """`python -m pipeline notify` (what `make notify` runs) towards a closed port."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "notify"], cwd=ROOT, capture_output=True,
        text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "REPORTS_DIR": str(reports_dir),
             **smtp_env(free_port_closed(), **settings)})


def test_make_notify_exits_non_zero_when_asked_to_log_in_without_tls(tmp_path: Path) -> None:
    builders.green(tmp_path)
    result = run_notify_cli(tmp_path, SMTP_USER=USER, SMTP_PASSWORD=PASSWORD)
    assert result.returncode == 1
    assert "would send the password in clear" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_wrong_password_is_a_clear_error(tmp_path: Path, tls_server: tuple) -> None:
    inbox, port, cert = tls_server
    builders.green(tmp_path / "reports")
    with pytest.raises(NotifyError, match=r"refused the login for 'pipeline': 535"):
        notify(tmp_path / "reports", smtp_env(port, SMTP_TLS="starttls", SMTP_USER=USER,
                                              SMTP_PASSWORD="wrong", SMTP_CA_FILE=str(cert)))
    assert inbox.messages == []


def test_server_requiring_auth_rejects_an_anonymous_sender(tmp_path: Path,
                                                           auth_server: tuple) -> None:
    _, port = auth_server
    builders.green(tmp_path)
    with pytest.raises(NotifyError, match=r"answered 530"):
        notify(tmp_path, smtp_env(port))


def test_starttls_with_a_private_ca(tmp_path: Path, tls_server: tuple) -> None:
    inbox, port, cert = tls_server
    builders.green(tmp_path / "reports")
    notify(tmp_path / "reports", smtp_env(port, SMTP_TLS="starttls", SMTP_USER=USER,
                                          SMTP_PASSWORD=PASSWORD, SMTP_CA_FILE=str(cert)))
    assert len(inbox.messages) == 1


def test_starttls_refuses_an_untrusted_certificate(tmp_path: Path, tls_server: tuple) -> None:
    inbox, port, _ = tls_server
    builders.green(tmp_path / "reports")
    with pytest.raises(NotifyError, match="CERTIFICATE_VERIFY_FAILED"):
        notify(tmp_path / "reports", smtp_env(port, SMTP_TLS="starttls", SMTP_USER=USER,
                                              SMTP_PASSWORD=PASSWORD))
    assert inbox.messages == []


def test_implicit_tls_with_a_private_ca_logs_in_and_delivers(
        tmp_path: Path, ssl_server: tuple) -> None:
    inbox, port, cert = ssl_server
    builders.unstable(tmp_path / "reports")
    notify(tmp_path / "reports", smtp_env(port, SMTP_TLS="ssl", SMTP_USER=USER,
                                          SMTP_PASSWORD=PASSWORD, SMTP_CA_FILE=str(cert)))
    assert [message["X-Pipeline-Status"] for message in inbox.messages] == ["UNSTABLE"]


def test_implicit_tls_refuses_an_untrusted_certificate(
        tmp_path: Path, ssl_server: tuple) -> None:
    inbox, port, _ = ssl_server
    builders.green(tmp_path / "reports")
    with pytest.raises(NotifyError, match=r"\(ssl\).*CERTIFICATE_VERIFY_FAILED"):
        notify(tmp_path / "reports", smtp_env(port, SMTP_TLS="ssl", SMTP_USER=USER,
                                              SMTP_PASSWORD=PASSWORD))
    assert inbox.messages == []


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    builders.green(tmp_path)
    with pytest.raises(NotifyError, match=rf"cannot send through SMTP server 127.0.0.1:"
                                          rf"{free_port_closed()} \(none\)"):
        notify(tmp_path, smtp_env(free_port_closed()))


_CLOSED_PORT: list[int] = []


def free_port_closed() -> int:
    """One port nothing listens on, the same for the whole test."""
    if not _CLOSED_PORT:
        _CLOSED_PORT.append(free_port())
    return _CLOSED_PORT[0]


def test_without_smtp_host_the_message_goes_to_the_outbox(tmp_path: Path) -> None:
    builders.unstable(tmp_path)
    path = notify(tmp_path, {"NOTIFY_TO": "team@example.com"})
    assert path is not None and path.parent == tmp_path / "outbox"
    assert path.name.endswith("-unstable.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "team@example.com"
    assert "champion kept" in message["Subject"]
    assert message.get_body(preferencelist=("html",)) is not None


def test_outbox_without_recipients_is_still_a_valid_message(tmp_path: Path) -> None:
    builders.green(tmp_path)
    path = notify(tmp_path, {})
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == "undisclosed-recipients:;"


def test_sending_without_recipients_is_refused(tmp_path: Path, smtp_server: tuple) -> None:
    _, port = smtp_server
    builders.green(tmp_path)
    settings = smtp_env(port)
    del settings["NOTIFY_TO"]
    with pytest.raises(NotifyError, match="NOTIFY_TO is not set"):
        notify(tmp_path, settings)


@pytest.mark.parametrize("variable, value, message", [
    ("SMTP_TLS", "sometimes", "SMTP_TLS='sometimes'"),
    ("SMTP_PORT", "twenty-five", "SMTP_PORT"),
])
def test_bad_settings_are_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(NotifyError, match=message):
        SmtpSettings.from_env({variable: value})


def test_default_ports_follow_the_tls_mode() -> None:
    assert SmtpSettings.from_env({}).port == 587
    assert SmtpSettings.from_env({"SMTP_TLS": "ssl"}).port == 465
    assert SmtpSettings.from_env({"SMTP_TLS": "none"}).port == 25


def test_make_notify_exits_non_zero_when_smtp_fails(tmp_path: Path) -> None:
    builders.green(tmp_path)
    result = run_notify_cli(tmp_path)
    assert result.returncode == 1
    assert "cannot send through SMTP server" in result.stdout
