"""Where the Kubernetes API is and how to authenticate to it: in-cluster or a kubeconfig.

``KubeConfig.in_cluster()`` reads what the kubelet mounts into every pod (the service account
token, the cluster CA, ``KUBERNETES_SERVICE_HOST``/``PORT``). ``KubeConfig.from_kubeconfig``
reads a kubeconfig (a parsed dict, or ``load_kubeconfig_file`` for a file) for its current or
named context: server, CA, bearer token or token file, optional client certificate.

Exec plugins and auth providers (``aws eks get-token``, ``gke-gcloud-auth-plugin``) are refused
with a clear error: meshcore targets pods in the cluster, where the service account is the
identity, and a developer can point a kubeconfig at ``kubectl proxy`` instead.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "KubeConfig",
    "KubeConfigError",
    "load_kubeconfig_file",
]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeConfigError(ValueError):
    """The configuration cannot reach or authenticate to a Kubernetes API server."""


@dataclass(frozen=True)
class KubeConfig:
    """One API server and the credentials for it. PEM ``*_data`` fields hold text, not base64."""

    server: str
    namespace: str = "default"
    ca_file: str | None = None
    ca_data: str | None = None
    token: str | None = None
    token_file: str | None = None
    """Re-read periodically (bound service account tokens rotate; see ``BearerToken``)."""
    client_cert_file: str | None = None
    client_key_file: str | None = None
    client_cert_data: str | None = None
    client_key_data: str | None = None
    insecure_skip_tls_verify: bool = False

    def __post_init__(self) -> None:
        if not self.server.startswith(("https://", "http://")):
            raise KubeConfigError(f"server must be an http(s) URL, got {self.server!r}")
        if (self.client_cert_file or self.client_cert_data) and not (
            self.client_key_file or self.client_key_data
        ):
            raise KubeConfigError("a client certificate needs its client key")

    # -- sources --------------------------------------------------------------------------

    @classmethod
    def in_cluster(
        cls, environ: Mapping[str, str] | None = None, root: str = SERVICE_ACCOUNT_DIR
    ) -> KubeConfig:
        """The pod's own service account, as client-go's ``rest.InClusterConfig``."""
        env = os.environ if environ is None else environ
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise KubeConfigError(
                "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT are not set"
            )
        token_file = Path(root, "token")
        if not token_file.is_file():
            raise KubeConfigError(
                f"no service account token at {token_file} "
                "(is automountServiceAccountToken false on the pod or its ServiceAccount?)"
            )
        if ":" in host:  # an IPv6 cluster IP
            host = f"[{host}]"
        namespace_file = Path(root, "namespace")
        namespace = namespace_file.read_text().strip() if namespace_file.is_file() else "default"
        ca_file = Path(root, "ca.crt")
        return cls(
            server=f"https://{host}:{port}",
            namespace=namespace or "default",
            ca_file=str(ca_file) if ca_file.is_file() else None,
            token_file=str(token_file),
        )

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: Mapping[str, Any], *, context: str | None = None, base_dir: str = "."
    ) -> KubeConfig:
        """The ``context`` (default: ``current-context``) of a parsed kubeconfig.

        Relative file paths resolve against ``base_dir`` (the kubeconfig's folder), as kubectl
        resolves them.
        """
        name = context or kubeconfig.get("current-context")
        if not name:
            raise KubeConfigError("kubeconfig has no current-context and none was given")
        ctx = _named(kubeconfig, "contexts", "context", name)
        cluster = _named(kubeconfig, "clusters", "cluster", ctx.get("cluster"))
        user: Mapping[str, Any] = {}
        if ctx.get("user"):
            user = _named(kubeconfig, "users", "user", ctx["user"])
        for unsupported in ("exec", "auth-provider"):
            if unsupported in user:
                raise KubeConfigError(
                    f"kubeconfig user {ctx['user']!r} uses {unsupported!r}, which meshcore "
                    "does not run; use a token, a client certificate or kubectl proxy"
                )
        server = cluster.get("server")
        if not server:
            raise KubeConfigError(f"kubeconfig cluster {ctx.get('cluster')!r} has no server")

        def path(value: Any) -> str | None:
            return None if not value else str(Path(base_dir, str(value)))

        return cls(
            server=str(server).rstrip("/"),
            namespace=str(ctx.get("namespace") or "default"),
            ca_file=path(cluster.get("certificate-authority")),
            ca_data=_pem(cluster.get("certificate-authority-data")),
            token=str(user["token"]) if user.get("token") else None,
            token_file=path(user.get("tokenFile")),
            client_cert_file=path(user.get("client-certificate")),
            client_key_file=path(user.get("client-key")),
            client_cert_data=_pem(user.get("client-certificate-data")),
            client_key_data=_pem(user.get("client-key-data")),
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        )

    @classmethod
    def load(
        cls,
        source: KubeConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> KubeConfig:
        """Whatever the caller has: a ``KubeConfig``, a parsed kubeconfig, a kubeconfig path,
        or ``None`` for "in-cluster when in a pod, else ``$KUBECONFIG`` or ~/.kube/config"."""
        if isinstance(source, KubeConfig):
            return source
        if isinstance(source, Mapping):
            return cls.from_kubeconfig(source)
        if source is not None:
            return load_kubeconfig_file(source)
        env = os.environ if environ is None else environ
        if env.get("KUBERNETES_SERVICE_HOST"):
            return cls.in_cluster(env)
        configured = env.get("KUBECONFIG", "").split(os.pathsep)[0]
        return load_kubeconfig_file(configured or Path.home() / ".kube" / "config")

    # -- TLS ------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """Verification against the cluster CA (or the system roots), plus a client cert."""
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_file and self.client_key_file:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        elif self.client_cert_data or self.client_key_data:
            # ssl loads key pairs only from files: write them to a private temporary folder
            # that exists only while they are loaded.
            with tempfile.TemporaryDirectory(prefix="meshcore-kube-") as folder:
                cert = _write_private(
                    Path(folder, "client.crt"), self.client_cert_data, self.client_cert_file
                )
                key = _write_private(
                    Path(folder, "client.key"), self.client_key_data, self.client_key_file
                )
                context.load_cert_chain(cert, key)
        return context


def load_kubeconfig_file(path: str | os.PathLike[str], *, context: str | None = None) -> KubeConfig:
    """A kubeconfig file (YAML, or JSON); YAML needs PyYAML installed."""
    file = Path(path).expanduser()
    try:
        text = file.read_text()
    except OSError as error:
        raise KubeConfigError(f"cannot read kubeconfig {file}: {error}") from None
    try:
        parsed = json.loads(text)
    except ValueError:
        try:
            yaml = importlib.import_module("yaml")
        except ImportError:
            raise KubeConfigError(
                f"kubeconfig {file} is YAML: install PyYAML, or pass the parsed dict"
            ) from None
        parsed = yaml.safe_load(text)
    if not isinstance(parsed, Mapping):
        raise KubeConfigError(f"kubeconfig {file} is not a mapping")
    return KubeConfig.from_kubeconfig(parsed, context=context, base_dir=str(file.parent))


def _named(kubeconfig: Mapping[str, Any], section: str, key: str, name: Any) -> Mapping[str, Any]:
    for entry in kubeconfig.get(section) or ():
        if entry.get("name") == name:
            found = entry.get(key) or {}
            if not isinstance(found, Mapping):
                raise KubeConfigError(f"kubeconfig {section} entry {name!r} is malformed")
            return found
    raise KubeConfigError(f"kubeconfig has no {key} named {name!r}")


def _pem(value: Any) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except ValueError:
        raise KubeConfigError("kubeconfig *-data fields must be base64-encoded PEM") from None


def _write_private(target: Path, data: str | None, file: str | None) -> str:
    if data is None:
        if file is None:
            raise KubeConfigError("a client certificate needs its client key")
        return file
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(data)
    return str(target)
