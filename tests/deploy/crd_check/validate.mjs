// Validates Istio resources against the schemas of Istio's own CRDs (Istio 1.29, compiled by
// @kubernetes-models/istio). Reads a JSON array of resources on stdin and prints a JSON array of
// problems ([] when every resource passes). Those schemas leave objects open, so unknown fields
// are caught by tests/deploy/istio_schemas.py instead; this checks types, enums and required
// fields against the real CRDs.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const schemas = join(here, "node_modules", "@kubernetes-models", "istio", "_schemas");

function moduleName(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  const groupName = group
    .split(".")
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join("");
  return `${groupName}${version[0].toUpperCase()}${version.slice(1)}${kind}.js`;
}

const resources = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const resource of resources) {
  const where = `${resource.kind}/${resource.metadata.name}`;
  let validate;
  try {
    ({ validate } = await import(pathToFileURL(join(schemas, moduleName(resource.apiVersion, resource.kind)))));
  } catch (error) {
    problems.push(`${where}: no CRD schema for ${resource.apiVersion} ${resource.kind}`);
    continue;
  }
  if (!validate(resource)) {
    for (const error of validate.errors) {
      problems.push(`${where}: ${error.instancePath || "/"} ${error.keyword} ${JSON.stringify(error.params)}`);
    }
  }
}
console.log(JSON.stringify(problems));
