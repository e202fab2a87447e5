"""Refresh the vendored JSON schemas in this folder from their PyPI packages.

    pip download --no-deps -d /tmp/wheels kubernetes-validate==1.37.0 check-jsonschema==0.39.0
    python tests/deploy/schemas/vendor_schemas.py /tmp/wheels

- ``kubernetes/v1.32/``: the strict (additionalProperties: false) schemas of kubernetes-validate
  for the kinds k8s/ uses, descriptions dropped and ``_definitions.json`` cut down to the
  definitions those kinds reach.
- ``compose-spec.json``: the Compose specification schema as check-jsonschema vendors it.

The Istio schemas (``istio/``) are ours, written from Istio's API reference; they are not
generated here.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
K8S_VERSION = "v1.32.0-local-strict"
K8S_FILES = [
    "namespace-v1.json",
    "serviceaccount-v1.json",
    "configmap-v1.json",
    "secret-v1.json",
    "service-v1.json",
    "deployment-apps-v1.json",
    "statefulset-apps-v1.json",
    "job-batch-v1.json",
    "poddisruptionbudget-policy-v1.json",
    "horizontalpodautoscaler-autoscaling-v2.json",
    "role-rbac-v1.json",
    "rolebinding-rbac-v1.json",
    "networkpolicy-networking-v1.json",
]
REF = re.compile(r"#/\$defs/([A-Za-z0-9_.\-]+)")


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        # A string "description" is documentation; a dict one would be a field of that name.
        return {
            k: _strip_descriptions(v)
            for k, v in node.items()
            if not (k == "description" and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


def _reachable(defs: dict[str, Any], roots: list[Any]) -> set[str]:
    seen: set[str] = set()
    todo = [name for root in roots for name in REF.findall(json.dumps(root))]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(REF.findall(json.dumps(defs[name])))
    return seen


def vendor_kubernetes(wheel: Path) -> None:
    prefix = f"kubernetes_validate/kubernetes-json-schema/{K8S_VERSION}/"
    out = HERE / "kubernetes" / "v1.32"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        schemas = {f: json.loads(zf.read(prefix + f)) for f in K8S_FILES}
        definitions = json.loads(zf.read(prefix + "_definitions.json"))
    keep = _reachable(definitions["$defs"], list(schemas.values()))
    definitions["$defs"] = {k: v for k, v in sorted(definitions["$defs"].items()) if k in keep}
    for name, schema in {**schemas, "_definitions.json": definitions}.items():
        text = json.dumps(_strip_descriptions(schema), indent=1, sort_keys=True)
        (out / name).write_text(text + "\n")


def vendor_compose(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read("check_jsonschema/builtin_schemas/vendor/compose-spec.json")
        licence = zf.read("check_jsonschema/builtin_schemas/vendor/licenses/LICENSE.compose-spec")
    (HERE / "compose-spec.json").write_bytes(data)
    (HERE / "LICENSE.compose-spec").write_bytes(licence)


def main(wheels: Path) -> None:
    vendor_kubernetes(next(wheels.glob("kubernetes_validate-*.whl")))
    vendor_compose(next(wheels.glob("check_jsonschema-*.whl")))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
