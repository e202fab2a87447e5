"""Whether a secret value may guard a production deployment: one rule for every secret.

``secret_problem(value)`` answers with the reason a value is refused, or ``None``. Production
settings run it on every ``Secret`` field and on the password of every URL that can carry one
(``DATABASE_URL``, ``REDIS_URL``, ...); ``tests/unit/test_repository_secrets.py`` runs it on
every secret-looking literal committed to the repository, which must all be refused: whatever
the repository shows, an attacker has read too.

The rule, in the order it is applied:

1. **At least 32 characters** (``MIN_SECRET_LENGTH``): an HS256 key shorter than the 256-bit
   hash output is refused by RFC 7518 §3.2, and the same floor costs nothing for passwords that
   a machine generates and reads from a file.
2. **Not a published sample** (``KNOWN_SAMPLE_VALUES``): values the repository offers for
   development that the next rules would not catch on their own.
3. **Not mostly guessable pieces**: words that mark a sample (``change-me``, ``dev``,
   ``example``, ``password``, ``secret``, ``test``, ...: ``_SAMPLE_WORDS``), runs of four or more
   neighbouring characters (``abcd``, ``6789``, ``aaaa``) and word separators (``-_.`` and
   spaces) add nothing an attacker has to guess. Once they are removed, at least
   ``MIN_UNGUESSABLE_CHARACTERS`` (24, three quarters of the minimum length) must remain. A
   prefix that labels a strong value (``prod-jwt-<43 random characters>``) stays acceptable.
4. **Generated, not written**: four or more parts between separators that are mostly words or
   numbers (``a-configured-jwt-secret-that-is-long-enough``, ``correct horse battery staple
   orbit``) are a phrase somebody typed, and typed phrases get reused and guessed. Generators
   never produce that shape: in 300,000 ``secrets.token_urlsafe(32)`` draws, none did. Production
   secrets are read by machines from files, so there is no reason for a memorable one.
5. **Not low-entropy**: what remains must not repeat a shorter unit (``Xk9$Xk9$...``) and must
   score at least ``MIN_ESTIMATED_BITS`` (64) as its length times the Shannon entropy of its own
   character frequencies. That estimate flatters structured values, so it can only prove
   weakness: a value scoring under 64 bits uses a handful of characters or leans on one. Random
   values never come near it (``openssl rand -hex 16``, the weakest common generator at 32
   characters, scored 90 bits at the least over 200,000 draws; digits only, 77).

Generate production secrets with ``openssl rand -base64 32`` or
``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = [
    "DEV_JWT_SECRET",
    "KNOWN_SAMPLE_VALUES",
    "MIN_ESTIMATED_BITS",
    "MIN_SECRET_LENGTH",
    "MIN_UNGUESSABLE_CHARACTERS",
    "is_acceptable_secret",
    "secret_problem",
]

MIN_SECRET_LENGTH = 32
"""HS256 keys shorter than the 256-bit hash output are refused in production (RFC 7518 §3.2)."""

MIN_UNGUESSABLE_CHARACTERS = 24
"""Characters that must remain once sample words, character runs and separators are removed."""

MIN_ESTIMATED_BITS = 64.0
"""The floor of ``len(rest) * shannon_entropy(rest)`` (see rule 4 in the module docstring)."""

DEV_JWT_SECRET = "zoptal-development-jwt-secret-NOT-FOR-PRODUCTION"  # noqa: S105
"""A development ``JWT_SECRET`` that docs and compose may use; production refuses it."""

KNOWN_SAMPLE_VALUES = frozenset(
    {
        # The development JWT_SECRET the docs suggest (rule 3 refuses it as well; named here so
        # the refusal does not depend on the word list).
        DEV_JWT_SECRET,
    }
)
"""Values the repository publishes that production refuses by name."""

# Words a person writes into a value meant to be replaced, never into a generated one. Matched
# case-insensitively and with any separators between their parts (``change_me``, ``Not-For-Prod``).
_SAMPLE_WORDS = (
    r"change\W?me",
    r"replace\W?me",
    r"not\W?for\W?prod(?:uction)?",
    r"dev(?:elopment)?",
    r"example",
    r"sample",
    r"test(?:ing)?",
    r"dummy",
    r"fake",
    r"placeholder",
    r"default",
    r"insecure",
    r"pass(?:wor)?d",
    r"secret",
    r"zoptal",
)
_SAMPLE_WORD = re.compile("|".join(_SAMPLE_WORDS), re.IGNORECASE)
_SEPARATORS = re.compile(r"[-_.\s]")
_PHRASE_PARTS = 4
_RUN_LENGTH = 4


def secret_problem(value: str) -> str | None:
    """Why ``value`` must not be a production secret, or ``None`` when it may be.

    The reason never quotes the value, so it can go into an error message or a log.
    """
    if len(value) < MIN_SECRET_LENGTH:
        return f"shorter than {MIN_SECRET_LENGTH} characters"
    if value in KNOWN_SAMPLE_VALUES:
        return "a sample value published in the repository"
    rest = _without_runs(_SEPARATORS.sub("", _SAMPLE_WORD.sub("", value)))
    if len(rest) < MIN_UNGUESSABLE_CHARACTERS:
        return (
            "too little left once sample words (change-me, dev, example, secret, ...), "
            "character runs (abcd, aaaa) and separators are set aside"
        )
    if _reads_like_a_phrase(value):
        return "a phrase somebody wrote (words joined by separators), not a generated value"
    if _repeats_a_shorter_unit(rest):
        return "low entropy: a short pattern repeated"
    if _estimated_bits(rest) < MIN_ESTIMATED_BITS:
        return "low entropy: too few distinct characters, or one of them dominates"
    return None


def is_acceptable_secret(value: str) -> bool:
    """``secret_problem(value) is None``."""
    return secret_problem(value) is None


def _without_runs(text: str) -> str:
    """``text`` without runs of ``_RUN_LENGTH`` or more characters that step by the same
    -1, 0 or +1 code point (``abcd``, ``4321``, ``zzzz``): the first thing anyone guesses."""
    kept: list[str] = []
    start = 0
    while start < len(text):
        end = start + 1
        if end < len(text):
            step = ord(text[end]) - ord(text[start])
            if step in (-1, 0, 1):
                while end + 1 < len(text) and ord(text[end + 1]) - ord(text[end]) == step:
                    end += 1
                end += 1
        if end - start >= _RUN_LENGTH:
            start = end
            continue
        kept.append(text[start])
        start += 1
    return "".join(kept)


def _reads_like_a_phrase(value: str) -> bool:
    """Four or more parts, three quarters of whose characters are in parts that are numbers or
    words in one case (``long``, ``Enough``, ``JWT``). Random mixed-case runs rarely are."""
    parts = [part for part in _SEPARATORS.split(value) if part]
    wordy = sum(
        len(part)
        for part in parts
        if part.isdigit()
        or (part.isalpha() and (part.islower() or part.isupper() or part.istitle()))
    )
    return len(parts) >= _PHRASE_PARTS and wordy * 4 >= sum(map(len, parts)) * 3


def _repeats_a_shorter_unit(text: str) -> bool:
    """True when ``text`` is a shorter string repeated (the last repetition may be cut)."""
    return any(
        all(text[index] == text[index % period] for index in range(period, len(text)))
        for period in range(1, len(text) // 2 + 1)
    )


def _estimated_bits(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(count * math.log2(count / total) for count in counts.values())
