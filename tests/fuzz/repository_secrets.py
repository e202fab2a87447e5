"""Every secret and private key anyone can read in the repository: what a forger would try first.

The files are the ones ``git ls-files`` names, read both as they are in the work tree and as the
last commit holds them (a secret deleted in the work tree is still in everyone's clone). From
their text come:

* values of keys named like ``*SECRET*``, ``*PASSWORD*``, ``*TOKEN*``, ``*KEY*`` (``K=v``,
  ``K: v``, ``K = "v"``, ``secret="v"``, compose's ``${K:-v}`` defaults);
* in ``.env``, YAML and compose files, any value of 16 characters or more;
* PEM private keys, also those the history still holds (deleted files stay in every clone).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

__all__ = ["KNOWN_OLD_SECRETS", "RepositorySecrets", "repository_secrets"]

REPO_ROOT = Path(__file__).resolve().parents[2]
KNOWN_OLD_SECRETS = (
    "zoptal-development-service-token-secret-NOT-FOR-PRODUCTION",
    "compose-dev-service-token-secret-change-me-0123456789",
)
"""The shared HS256 service-token secrets development used to default to."""
MAX_FILE_BYTES = 2_000_000

_NAMED = re.compile(
    r"""(?ix)
    \b[A-Za-z0-9_.-]*(?:secret|password|passwd|token|key)[A-Za-z0-9_.-]*   # the key's name
    ["']?\s*(?::|=|:=)\s*                                                   # K=, K:, "K":
    (?:\$\{[A-Za-z0-9_]+:?-)?                                               # ${K:-default}
    (?P<quote>["']?)(?P<value>[^\s"'`,;}{)(\]\[#]{4,})(?P=quote)
    """
)
_ANY_VALUE = re.compile(
    r"""(?x)
    (?:[:=]\s*|:-)(?P<quote>["']?)(?P<value>[A-Za-z0-9_+/=.@:~-]{16,})(?P=quote)
    """
)
_PEM_PRIVATE = re.compile(
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[A-Za-z0-9+/=\s]+-----END (?:[A-Z]+ )?PRIVATE KEY-----"
)
_CONFIG_SUFFIXES = (".env", ".yaml", ".yml")
# Values the named pattern catches that are code or placeholders, never a secret.
_NOT_A_SECRET = re.compile(
    r"""(?x)
    ^(?:true|false|none|null|self|cls|str|bytes|int|bool|secret|password|token|key|value)$
    | ^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_.]*$   # attribute access: settings.jwt_secret
    | ^[A-Za-z_][A-Za-z0-9_]*$                            # a bare identifier, not a literal
    """
)


@dataclass(frozen=True)
class RepositorySecrets:
    strings: tuple[str, ...]
    """Candidate HMAC secrets, each once, in a stable order."""
    private_keys: tuple[bytes, ...] = field(repr=False)
    """PEM private keys, each once."""
    files_read: int


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    return [name for name in listed.decode().split("\0") if name]


def _committed_texts(paths: list[str]) -> list[bytes | None]:
    """The last commit's version of each tracked file (``git cat-file --batch``); None for a
    file added since."""
    request = "".join(f"HEAD:{path}\n" for path in paths).encode()
    output = subprocess.run(
        ["git", "cat-file", "--batch"], cwd=REPO_ROOT, input=request, capture_output=True
    ).stdout
    texts: list[bytes | None] = []
    position = 0
    while position < len(output):
        end = output.index(b"\n", position)
        header = output[position:end].split()
        position = end + 1
        if len(header) != 3:  # "<name> missing": added since the last commit
            texts.append(None)
            continue
        size = int(header[2])
        texts.append(output[position : position + size])
        position += size + 1
    return texts


def _scan(name: str, data: bytes, strings: dict[str, None], keys: dict[bytes, None]) -> None:
    if len(data) > MAX_FILE_BYTES or b"\0" in data[:8192]:
        return
    text = data.decode("utf-8", errors="ignore")
    for match in _PEM_PRIVATE.finditer(text):
        keys.setdefault(match.group(0).encode(), None)
    for match in _NAMED.finditer(text):
        value = match.group("value")
        if not _NOT_A_SECRET.match(value):
            strings.setdefault(value, None)
    lowered = name.lower()
    if lowered.endswith(_CONFIG_SUFFIXES) or "compose" in lowered:
        for match in _ANY_VALUE.finditer(text):
            strings.setdefault(match.group("value"), None)


def _private_keys_in_history() -> str:
    """Every PEM private key block any commit added or removed, as text (diff markers cut)."""
    log = subprocess.run(
        ["git", "log", "--all", "--format=", "-p", "-S", "PRIVATE KEY-----"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    ).stdout.decode("utf-8", errors="ignore")
    return "\n".join(line[1:] for line in log.splitlines() if line[:1] in "+- ")


@cache
def repository_secrets() -> RepositorySecrets:
    paths = _tracked_files()
    strings: dict[str, None] = {}
    keys: dict[bytes, None] = {}
    read = 0
    for path in paths:
        try:
            data = (REPO_ROOT / path).read_bytes()
        except OSError:  # deleted in the work tree: the committed version is read below
            continue
        _scan(path, data, strings, keys)
        read += 1
    for path, committed in zip(paths, _committed_texts(paths), strict=True):
        if committed is not None:
            _scan(path, committed, strings, keys)
            read += 1
    for match in _PEM_PRIVATE.finditer(_private_keys_in_history()):
        keys.setdefault(match.group(0).encode(), None)
    for known in KNOWN_OLD_SECRETS:
        strings.setdefault(known, None)
    return RepositorySecrets(tuple(strings), tuple(keys), read)
