"""Nothing secret in the repository, nothing forgeable from it.

Every file ``git ls-files`` lists is scanned for candidate secrets: a literal value given to a
key that looks secret (``*SECRET*``, ``*PASSWORD*``, ``*TOKEN*``, ``*KEY*``, ``*CREDENTIAL*``) in
code, YAML, env files or docs, a compose default (``${JWT_SECRET:-value}``), and the password of
any connection URL. Each one is fed to the production check (``meshcore.secret_policy``) and must
be refused: a value anybody can read here must never open a production deployment. A committed
PEM private key fails outright, whatever it is for.

The scanner errs towards finding too much: a candidate that is no secret at all (a TTL, a path)
costs nothing, because it is refused too. So the test itself, and every other test, writes
strong values as ``secrets.token_urlsafe(32)`` at run time, never as literals.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from meshcore.secret_policy import secret_problem

REPOSITORY = Path(__file__).resolve().parents[2]

_SECRET_KEY = r"[\w.-]*(?:secret|passw(?:or)?d|token|key|credential)[\w.-]*"
# Python's b"", r"", f"" prefixes included: secret=b"..." is as literal as secret="...".
_QUOTED = r"""(?P<prefix>[bBrRuUfF]{0,2})(?:"(?P<double>[^"\n]*)"|'(?P<single>[^'\n]*)')"""
_BARE = r"(?P<bare>[^\s\"'#,;)}\]]+)"
# `KEY = "v"`, `key: v`, `"key": "v"`, `KEY=v`, `key := "v"`; the key may be quoted itself.
ASSIGNMENT = re.compile(
    rf"""(?P<key>["']?{_SECRET_KEY}["']?)\s*(?::=|=|:)\s*(?:{_QUOTED}|{_BARE})""",
    re.IGNORECASE,
)
# compose and shell defaults: ${POSTGRES_PASSWORD:-value}
SHELL_DEFAULT = re.compile(rf"\$\{{{_SECRET_KEY}:?-(?P<default>[^}}]*)\}}", re.IGNORECASE)
# A value wrapped without a key: Secret("...") in code.
WRAPPED = re.compile(r"""\bSecret\(\s*[bBrR]?(?:"(?P<double>[^"\n]*)"|'(?P<single>[^'\n]*)')""")
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@\"']*:(?P<password>[^\s@/\"']+)@", re.I)
PEM_PRIVATE_KEY = re.compile("-----BEGIN [A-Z0-9 ]*PRIVATE" + " KEY-----")

_LOCATION_KEY = re.compile(r"""_(?:dir|file|files|path|url|addr)["']?$""", re.IGNORECASE)
# Not literals: a reference to another variable, an interpolation, an expression in code.
_REFERENCE = re.compile(r"^(?:\$\{?|\{|%\(|<|\[|\(|os\.|settings\.|self\.|f?\"|\*\*\*)")


@dataclass(frozen=True)
class Candidate:
    path: str
    line: int
    value: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def candidates_in(path: str, text: str) -> tuple[list[Candidate], list[str]]:
    """The candidate secrets of one file, and the places of PEM private keys in it."""
    found: list[Candidate] = []
    keys: list[str] = []
    python = path.endswith((".py", ".pyi"))
    for number, line in enumerate(text.splitlines(), start=1):
        if PEM_PRIVATE_KEY.search(line):
            keys.append(f"{path}:{number}")
        values: list[str] = []
        for match in (*ASSIGNMENT.finditer(line), *WRAPPED.finditer(line)):
            if "key" in match.groupdict() and _LOCATION_KEY.search(match.group("key")):
                continue  # says where a secret is, not what; URL passwords are found below
            quoted = match.group("double") if match.group("double") is not None else None
            quoted = match.group("single") if quoted is None else quoted
            formatted = "f" in (match.groupdict().get("prefix") or "").lower()
            if quoted is not None and not (formatted and "{" in quoted):  # f"{...}": computed
                values.append(quoted)
            elif match.groupdict().get("bare") and not python:  # in code, a bare word is a name
                values.append(match.group("bare"))
        values += [match.group("default") for match in SHELL_DEFAULT.finditer(line)]
        values += [match.group("password") for match in URL_PASSWORD.finditer(line)]
        found += [
            Candidate(path, number, value)
            for value in values
            if value and not _REFERENCE.match(value)
        ]
    return found, keys


def _repository_files() -> list[tuple[str, str]]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPOSITORY, capture_output=True, check=True
    ).stdout.decode()
    files: list[tuple[str, str]] = []
    for name in filter(None, listed.split("\0")):
        path = REPOSITORY / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" not in data:
            files.append((name, data.decode("utf-8", errors="replace")))
    return files


@pytest.fixture(scope="module")
def scanned() -> tuple[list[Candidate], list[str]]:
    candidates: list[Candidate] = []
    keys: list[str] = []
    for name, text in _repository_files():
        found, pem = candidates_in(name, text)
        candidates += found
        keys += pem
    return candidates, keys


def test_every_committed_secret_candidate_is_refused_by_production(scanned) -> None:
    """Whatever the repository shows, production refuses it (the values are not printed)."""
    candidates, _ = scanned
    assert len(candidates) > 100  # the scanner is looking at the real tree
    accepted = [str(each) for each in candidates if secret_problem(each.value) is None]
    assert accepted == [], f"production would accept these committed values: {accepted}"


def test_no_private_key_is_committed(scanned) -> None:
    """A private key in the repository can sign anything its public half is trusted for."""
    _, keys = scanned
    assert keys == [], f"committed PEM private keys: {keys}"


def test_the_scanner_finds_planted_secrets() -> None:
    """Each shape the scanner claims to find, planted in a file, is found with its value."""
    strong = "Vq3" + "xT9pL2mR8nW4kB7yC1dF6gH0jZ5sA-eU"
    planted = {
        "settings.py": f"JWT_SECRET = \"{strong}\"\nservice_token = '{strong}'\n",
        "call.py": f'connect(password="{strong}")\nconfig = {{"api_key": "{strong}"}}\n',
        "bytes.py": f'hmac_secret = b"{strong}"\n',
        "wrapped.py": f'settings = Settings(jwt=Secret("{strong}"))\n',
        "deploy.yaml": f"env:\n  WEBHOOK_SECRET: {strong}\n  db_password: '{strong}'\n",
        "secrets.env": f"SMTP_PASSWORD={strong}\nCLIENT_CREDENTIAL={strong}\n",
        "compose.yml": f"JWT_SECRET: ${{JWT_SECRET:-{strong}}}\n",
        "README.md": f"DATABASE_URL=postgresql+asyncpg://app:{strong}@db/app\n",
        "other.txt": f"see redis://:{strong}@redis:6379/0 for the cache\n",
    }
    for name, text in planted.items():
        found, _ = candidates_in(name, text)
        assert strong in {candidate.value for candidate in found}, name
        assert all(secret_problem(c.value) is None for c in found if c.value == strong)
    pem = "-----BEGIN EC " + "PRIVATE KEY-----\nMHcCAQEE...\n"
    assert candidates_in("key.pem", pem)[1] == ["key.pem:1"]


def test_references_and_names_are_not_literals() -> None:
    """``password=password`` in code and ``${VAR}`` references are names, not values."""
    text = 'login(password=password)\ntoken = os.environ["TOKEN"]\nsecret = settings.jwt_secret\n'
    assert candidates_in("code.py", text)[0] == []
    assert candidates_in("x.yaml", "JWT_SECRET: ${JWT_SECRET}\n")[0] == []
