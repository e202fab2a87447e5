"""KubeConfig: in-cluster service account, kubeconfig dicts and files, TLS material."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from meshcore.discovery.kubeconfig import KubeConfig, KubeConfigError, load_kubeconfig_file


def self_signed() -> tuple[str, str]:
    """A throwaway certificate and key (PEM) for the TLS loading tests."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshcore-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(**user: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "contexts": [
            {"name": "dev", "context": {"cluster": "kind", "user": "me", "namespace": "zoptal"}},
            {"name": "other", "context": {"cluster": "kind", "user": "me"}},
        ],
        "clusters": [
            {
                "name": "kind",
                "cluster": {"server": "https://127.0.0.1:6443/", "certificate-authority": "ca.crt"},
            }
        ],
        "users": [{"name": "me", "user": user or {"token": "abc"}}],
    }


def test_in_cluster_reads_the_mounted_service_account(tmp_path: Path) -> None:
    """Host and port from the environment; token, CA and namespace from the mounted files."""
    (tmp_path / "token").write_text("tok")
    (tmp_path / "ca.crt").write_text("ca")
    (tmp_path / "namespace").write_text("zoptal\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = KubeConfig.in_cluster(env, root=str(tmp_path))
    assert config.server == "https://10.96.0.1:443"
    assert config.token_file == str(tmp_path / "token")
    assert config.token is None  # read (and re-read) from the file, never cached here
    assert config.ca_file == str(tmp_path / "ca.crt")
    assert config.namespace == "zoptal"


def test_in_cluster_brackets_an_ipv6_service_host(tmp_path: Path) -> None:
    """An IPv6 cluster IP becomes a valid URL host."""
    (tmp_path / "token").write_text("tok")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert KubeConfig.in_cluster(env, root=str(tmp_path)).server == "https://[fd00::1]:443"


def test_in_cluster_outside_a_pod_or_without_a_token_says_why(tmp_path: Path) -> None:
    """No service environment, or no mounted token, is a clear KubeConfigError."""
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_HOST"):
        KubeConfig.in_cluster({}, root=str(tmp_path))
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(KubeConfigError, match="automountServiceAccountToken"):
        KubeConfig.in_cluster(env, root=str(tmp_path))


def test_kubeconfig_current_context_with_paths_relative_to_its_folder() -> None:
    """current-context picks cluster, user and namespace; relative paths join base_dir."""
    config = KubeConfig.from_kubeconfig(kubeconfig(), base_dir="/home/me/.kube")
    assert config.server == "https://127.0.0.1:6443"
    assert config.namespace == "zoptal"
    assert config.ca_file == "/home/me/.kube/ca.crt"
    assert config.token == "abc"
    other = KubeConfig.from_kubeconfig(kubeconfig(), context="other")
    assert other.namespace == "default"


def test_kubeconfig_data_fields_are_decoded_and_build_an_ssl_context() -> None:
    """Base64 CA and client certificate data load into a verifying SSL context."""
    cert, key = self_signed()
    data = kubeconfig(**{"client-certificate-data": b64(cert), "client-key-data": b64(key)})
    cluster = data["clusters"][0]["cluster"]
    del cluster["certificate-authority"]
    cluster["certificate-authority-data"] = b64(cert)
    config = KubeConfig.from_kubeconfig(data)
    assert config.ca_data == cert
    assert config.client_key_data == key
    context = config.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1


def test_kubeconfig_refuses_exec_plugins_missing_contexts_and_bad_data() -> None:
    """What meshcore cannot use fails at construction, naming the problem."""
    with pytest.raises(KubeConfigError, match="'exec'"):
        KubeConfig.from_kubeconfig(kubeconfig(exec={"command": "aws"}))
    with pytest.raises(KubeConfigError, match="no context named 'prod'"):
        KubeConfig.from_kubeconfig(kubeconfig(), context="prod")
    broken = kubeconfig()
    broken["clusters"][0]["cluster"]["certificate-authority-data"] = "not base64!"
    with pytest.raises(KubeConfigError, match="base64"):
        KubeConfig.from_kubeconfig(broken)
    with pytest.raises(KubeConfigError, match="client key"):
        KubeConfig(server="https://k", client_cert_file="c.crt")
    with pytest.raises(KubeConfigError, match="http"):
        KubeConfig(server="k8s.local:6443")


def test_kubeconfig_files_in_yaml_or_json_and_from_the_environment(tmp_path: Path) -> None:
    """A YAML or JSON kubeconfig file loads; ``load(None)`` follows $KUBECONFIG."""
    yaml = pytest.importorskip("yaml")
    as_yaml = tmp_path / "config.yaml"
    as_yaml.write_text(yaml.safe_dump(kubeconfig()))
    assert load_kubeconfig_file(as_yaml).ca_file == str(tmp_path / "ca.crt")
    as_json = tmp_path / "config.json"
    as_json.write_text(json.dumps(kubeconfig(token="from-json")))
    loaded = KubeConfig.load(None, environ={"KUBECONFIG": str(as_json)})
    assert loaded.token == "from-json"
    with pytest.raises(KubeConfigError, match="cannot read"):
        load_kubeconfig_file(tmp_path / "missing")
