"""Generate the Python code of the Zoptal APIs from protos/ into libs/zoptal-api/src/zoptal/.

    python scripts/generate_protos.py            lint with buf, then (re)generate in place
    python scripts/generate_protos.py --check    lint, check compatibility with the last release,
                                                 generate into a temporary folder and compare;
                                                 exit 1 naming every file that differs
    python scripts/generate_protos.py --release v0.2.0
                                                 record protos/ as that release (a buf image in
                                                 protos/releases/), the base of later checks
    --skip-lint                                  skip `buf lint`, `buf format` and `buf breaking`

Compatibility: `buf breaking` (FILE rules, buf.yaml) compares protos/ with the newest image in
protos/releases/, so a change that would break a client generated from a released proto (a
removed or renumbered field, a renamed RPC, a changed type) fails `make proto-check` and the test
suite. A committed image rather than a git tag: a shallow or tag-less clone checks the same way.

For every protos/zoptal/<svc>/v1/<svc>.proto it writes, under libs/zoptal-api/src/zoptal/<svc>/v1/:
<svc>_pb2.py, <svc>_pb2_grpc.py (grpc_tools.protoc) and their typed stubs <svc>_pb2.pyi and
<svc>_pb2_grpc.pyi (mypy-protobuf), plus the __init__.py files of zoptal/<svc>/ and
zoptal/<svc>/v1/. Output depends only on the .proto files and the locked tool versions: files are
fed to protoc in sorted order, and an unchanged file is not rewritten.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
RELEASES = PROTO_ROOT / "releases"
OUT_ROOT = ROOT / "libs" / "zoptal-api" / "src"
SERVICES = ("auth", "project", "billing", "notification", "analytics")
API_VERSION = "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def _tool(name: str) -> str:
    """Find an executable of the running environment first (the uv venv), then on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"generate_protos: `{name}` not found; run `uv sync` (dev group) first")
    return found


def proto_files() -> list[Path]:
    files = []
    for svc in SERVICES:
        path = PROTO_ROOT / "zoptal" / svc / API_VERSION / f"{svc}.proto"
        if not path.is_file():
            raise SystemExit(f"generate_protos: missing {path.relative_to(ROOT)}")
        files.append(path)
    return sorted(files)


def lint() -> None:
    """`buf lint` (STANDARD rules, buf.yaml) and `buf format` (layout) must both be clean."""
    buf = _tool("buf")
    for command in (["lint"], ["format", "--diff", "--exit-code"]):
        # The commands are fixed; only the executable path is looked up.
        result = subprocess.run([buf, *command], cwd=ROOT, check=False)  # noqa: S603
        if result.returncode != 0:
            raise SystemExit(f"generate_protos: buf {command[0]} failed (exit {result.returncode})")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.stem))


def latest_release() -> Path | None:
    """The newest recorded release image (``protos/releases/v<x.y.z>.binpb``), if any."""
    images = sorted(RELEASES.glob("v*.binpb"), key=_version_key)
    return images[-1] if images else None


def breaking() -> None:
    """`buf breaking` against the newest release: fail on a change that breaks its clients."""
    against = latest_release()
    if against is None:
        print("generate_protos: no release recorded yet; nothing to compare with")
        return
    buf = _tool("buf")
    # The arguments are fixed or come from this repository's own file names.
    result = subprocess.run(  # noqa: S603
        [buf, "breaking", "--against", str(against.relative_to(ROOT))], cwd=ROOT, check=False
    )
    if result.returncode != 0:
        raise SystemExit(
            f"generate_protos: protos/ breaks clients of {against.stem} (buf breaking, above); "
            "add instead of changing, or release a new API version (zoptal.<svc>.v2)"
        )


def record_release(version: str) -> int:
    if re.fullmatch(r"v\d+\.\d+\.\d+", version) is None:
        raise SystemExit(f"generate_protos: {version!r} is not a version like v0.2.0")
    target = RELEASES / f"{version}.binpb"
    if target.exists():
        raise SystemExit(f"generate_protos: {target.relative_to(ROOT)} exists; releases are final")
    RELEASES.mkdir(exist_ok=True)
    buf = _tool("buf")
    # buf builds the module of buf.yaml; the output path is ours.
    subprocess.run([buf, "build", "-o", str(target)], cwd=ROOT, check=True)  # noqa: S603
    print(f"recorded {target.relative_to(ROOT)}")
    return 0


def _init_files() -> dict[str, str]:
    """The package __init__.py files, relative to OUT_ROOT, with their content."""
    files = {}
    for svc in SERVICES:
        files[f"zoptal/{svc}/__init__.py"] = f'"""The Zoptal {svc} API."""\n'
        files[f"zoptal/{svc}/{API_VERSION}/__init__.py"] = (
            f'"""Generated code of zoptal.{svc}.{API_VERSION}.\n\n'
            f"From protos/zoptal/{svc}/{API_VERSION}/{svc}.proto; do not edit, run `make proto`.\n"
            '"""\n'
        )
    return files


def generate(out_root: Path) -> None:
    """Run protoc with the python, grpc and mypy-protobuf plugins into out_root."""
    out_root.mkdir(parents=True, exist_ok=True)
    # The well-known types (google/protobuf/*.proto) ship inside grpc_tools.
    includes = [str(PROTO_ROOT), str(Path(grpc_tools.__file__).parent / "_proto")]
    args = [
        "grpc_tools.protoc",
        *(f"-I{inc}" for inc in includes),
        f"--plugin=protoc-gen-mypy={_tool('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_tool('protoc-gen-mypy_grpc')}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out=quiet:{out_root}",
        f"--mypy_grpc_out=quiet:{out_root}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"generate_protos: protoc failed (exit {code})")
    for rel, content in _init_files().items():
        (out_root / rel).write_text(content, encoding="utf-8")


def managed_files(root: Path) -> dict[str, bytes]:
    """Every file this script owns under root: the generated modules and the __init__ files.

    Hand-written files next to them (if any) are neither compared nor removed.
    """
    found: dict[str, bytes] = {}
    for svc in SERVICES:
        pkg = root / "zoptal" / svc
        candidates = [pkg / "__init__.py", pkg / API_VERSION / "__init__.py"]
        if (pkg / API_VERSION).is_dir():
            candidates += [
                path
                for path in (pkg / API_VERSION).iterdir()
                if path.name.endswith(GENERATED_SUFFIXES)
            ]
        for path in sorted(candidates):
            if path.is_file():
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def check() -> int:
    with tempfile.TemporaryDirectory(prefix="zoptal-protos-") as tmp:
        generate(Path(tmp))
        expected = managed_files(Path(tmp))
    actual = managed_files(OUT_ROOT)
    differing = sorted(
        rel for rel in expected.keys() | actual.keys() if expected.get(rel) != actual.get(rel)
    )
    if not differing:
        print("generate_protos: generated code is up to date")
        return 0
    print("generate_protos: generated code is stale; run `make proto`. Differing files:")
    for rel in differing:
        state = "missing" if rel not in actual else "extra" if rel not in expected else "changed"
        print(f"  {state}: {(OUT_ROOT / rel).relative_to(ROOT).as_posix()}")
    return 1


def write() -> int:
    with tempfile.TemporaryDirectory(prefix="zoptal-protos-") as tmp:
        generate(Path(tmp))
        expected = managed_files(Path(tmp))
    actual = managed_files(OUT_ROOT)
    for rel in sorted(actual.keys() - expected.keys()):
        (OUT_ROOT / rel).unlink()
        print(f"removed {rel}")
    changed = [rel for rel, content in sorted(expected.items()) if actual.get(rel) != content]
    if not changed and actual.keys() <= expected.keys():
        print("generate_protos: generated code is up to date")
    for rel in changed:
        content = expected[rel]
        target = OUT_ROOT / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        print(f"wrote {(OUT_ROOT / rel).relative_to(ROOT).as_posix()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--skip-lint", action="store_true", help="do not run buf")
    parser.add_argument("--release", metavar="VERSION", help="record protos/ as this release")
    args = parser.parse_args(argv)
    if args.release:
        lint()
        breaking()
        return record_release(args.release)
    if not args.skip_lint:
        lint()
        breaking()
    return check() if args.check else write()


if __name__ == "__main__":
    sys.exit(main())
