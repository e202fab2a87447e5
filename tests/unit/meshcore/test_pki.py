"""meshcore.pki: what the certificates say, file modes, and when ``ensure`` issues again."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from meshcore.pki import (
    CertificateRequest,
    PkiError,
    ensure,
    ensure_ca,
    issue,
    renewal_reason,
)
from meshcore.pki.__main__ import main
from meshcore.testing import FakeClock
from meshcore.tls import CertificateWatcher, TlsFiles

DAY = 86_400.0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _certificate(folder: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((folder / "tls.crt").read_bytes())


def test_a_leaf_names_its_service_by_spiffe_id_and_its_hosts_by_dns_and_ip(
    tmp_path: Path,
) -> None:
    ca, made = ensure_ca(tmp_path / "ca")
    assert made
    request = CertificateRequest(
        "billing",
        dns_names=["billing.zoptal.svc"],
        ip_addresses=["10.0.0.7"],
        trust_domain="ex.org",
    )
    certificate = issue(ca, tmp_path / "billing", request)
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://ex.org/service/billing"
    ]
    assert sans.get_values_for_type(x509.DNSName) == ["billing", "localhost", "billing.zoptal.svc"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.7"),
    ]
    assert ca.signed(certificate)
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 30 <= lifetime.days <= 31  # short-lived by default


def test_keys_are_0600_in_0700_folders(tmp_path: Path) -> None:
    ca, _ = ensure_ca(tmp_path / "ca")
    issue(ca, tmp_path / "out" / "billing", CertificateRequest("billing"))
    assert _mode(tmp_path / "ca") == 0o700
    assert _mode(tmp_path / "ca" / "ca.key") == 0o600
    assert _mode(tmp_path / "out" / "billing") == 0o700
    assert _mode(tmp_path / "out" / "billing" / "tls.key") == 0o600
    assert sorted(p.name for p in (tmp_path / "out" / "billing").iterdir()) == [
        "ca.crt",
        "tls.crt",
        "tls.key",
    ]  # no temporary file left behind


def test_ensure_ca_keeps_an_existing_ca(tmp_path: Path) -> None:
    first, _ = ensure_ca(tmp_path / "ca")
    again, made = ensure_ca(tmp_path / "ca")
    assert not made
    assert again.certificate == first.certificate


def test_ensure_issues_when_missing_then_leaves_a_good_certificate_alone(tmp_path: Path) -> None:
    clock = FakeClock()
    ca, _ = ensure_ca(tmp_path / "ca", clock=clock)
    request = CertificateRequest("billing")
    assert ensure(ca, tmp_path / "billing", request, clock=clock) == "tls.crt is missing"
    serial = _certificate(tmp_path / "billing").serial_number
    clock.advance(19 * DAY)  # within the first two thirds of 30 days
    assert ensure(ca, tmp_path / "billing", request, clock=clock) is None
    assert _certificate(tmp_path / "billing").serial_number == serial


def test_ensure_renews_in_the_last_third_of_life(tmp_path: Path) -> None:
    clock = FakeClock()
    ca, _ = ensure_ca(tmp_path / "ca", clock=clock)
    request = CertificateRequest("billing")
    old = issue(ca, tmp_path / "billing", request, clock=clock)
    clock.advance(21 * DAY)
    reason = ensure(ca, tmp_path / "billing", request, clock=clock)
    assert reason is not None
    assert "last third" in reason
    assert _certificate(tmp_path / "billing").serial_number != old.serial_number


def test_ensure_replaces_a_certificate_of_another_ca_or_for_other_names(tmp_path: Path) -> None:
    ca, _ = ensure_ca(tmp_path / "ca")
    other, _ = ensure_ca(tmp_path / "other")
    issue(other, tmp_path / "billing", CertificateRequest("billing"))
    request = CertificateRequest("billing")
    assert renewal_reason(ca, tmp_path / "billing", request) == "it was issued by another CA"
    ensure(ca, tmp_path / "billing", request)
    assert ca.signed(_certificate(tmp_path / "billing"))
    wider = CertificateRequest("billing", dns_names=["billing.example"])
    assert renewal_reason(ca, tmp_path / "billing", wider) == (
        "its names differ from those requested"
    )


def test_written_files_load_as_a_matching_pair(tmp_path: Path) -> None:
    ca, _ = ensure_ca(tmp_path / "ca")
    certificate = issue(ca, tmp_path / "b", CertificateRequest("billing"))
    files = TlsFiles(
        tmp_path / "b" / "tls.crt", tmp_path / "b" / "tls.key", tmp_path / "b" / "ca.crt"
    )
    watcher = CertificateWatcher(files)
    assert watcher.current.serial == certificate.serial_number
    assert watcher.reload_if_changed() is None  # nothing changed
    renewed = issue(ca, tmp_path / "b", CertificateRequest("billing"))
    bundle = watcher.reload_if_changed()
    assert bundle is not None
    assert bundle.serial == renewed.serial_number


def test_a_key_that_is_not_the_certificates_is_not_loaded(tmp_path: Path) -> None:
    """A half-finished rotation (new key, old certificate) keeps the previous pair in use."""
    ca, _ = ensure_ca(tmp_path / "ca")
    first = issue(ca, tmp_path / "b", CertificateRequest("billing"))
    old_cert = (tmp_path / "b" / "tls.crt").read_bytes()
    files = TlsFiles(
        tmp_path / "b" / "tls.crt", tmp_path / "b" / "tls.key", tmp_path / "b" / "ca.crt"
    )
    watcher = CertificateWatcher(files)
    issue(ca, tmp_path / "b", CertificateRequest("billing"))
    (tmp_path / "b" / "tls.crt").write_bytes(old_cert)  # the new key beside the old cert
    assert watcher.reload_if_changed() is None
    assert watcher.current.serial == first.serial_number


@pytest.mark.parametrize(
    "bad",
    [
        ["issue", "--ca-dir", "{tmp}/ca", "--out", "{tmp}/o", "--service", "Not_A_Label"],
        ["issue", "--ca-dir", "{tmp}/ca", "--out", "{tmp}/o", "--service", "b", "--ip", "nope"],
        ["issue", "--ca-dir", "{tmp}/ca", "--out", "{tmp}/o", "--service", "b", "--days", "0"],
        ["issue", "--ca-dir", "{tmp}/missing", "--out", "{tmp}/o", "--service", "b"],
        ["ensure", "--ca-dir", "{tmp}/ca", "--out", "{tmp}/o"],
    ],
)
def test_the_command_line_exits_2_on_bad_input(
    tmp_path: Path, bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_ca(tmp_path / "ca")
    with pytest.raises(SystemExit) as exited:
        main([part.format(tmp=tmp_path) for part in bad])
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_command_line_issues_and_ensures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ensure-ca", "--dir", str(tmp_path / "ca")]) == 0
    args = ["--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "b"), "--service", "billing"]
    assert main(["ensure", *args]) == 0
    assert main(["ensure", *args]) == 0
    out = capsys.readouterr().out
    assert "issued, tls.crt is missing" in out
    assert out.rstrip().endswith("current")


def test_a_bad_request_raises_pki_error() -> None:
    with pytest.raises(PkiError):
        CertificateRequest("billing", trust_domain="Bad Domain").subject_alternative_names()
