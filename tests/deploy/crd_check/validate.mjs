// Validates custom resources against the schemas of their own CRDs: Istio's (Istio 1.29,
// compiled by @kubernetes-models/istio) and the Prometheus Operator's (PrometheusRule,
// PodMonitor..., @kubernetes-models/prometheus-operator). Reads a JSON array of resources on
// stdin and prints a JSON array of problems ([] when every resource passes). Istio's schemas
// leave objects open, so unknown fields there are caught by tests/deploy/istio_schemas.py
// instead; this checks types, enums and required fields against the real CRDs.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const models = join(here, "node_modules", "@kubernetes-models");

const capitalised = (word) => word[0].toUpperCase() + word.slice(1);

// The compiled schema module of a kind: each package names its modules after the Go package
// (Prometheus Operator) or the API group (Istio) that defines the kind.
function modulePath(apiVersion, kind) {
  const [group, version] = apiVersion.split("/");
  if (group === "monitoring.coreos.com") {
    const prefix = "ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoring";
    return join(models, "prometheus-operator", "_schemas", `${prefix}${capitalised(version)}${kind}.js`);
  }
  const groupName = group.split(".").map(capitalised).join("");
  return join(models, "istio", "_schemas", `${groupName}${capitalised(version)}${kind}.js`);
}

const resources = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const resource of resources) {
  const where = `${resource.kind}/${resource.metadata.name}`;
  let validate;
  try {
    ({ validate } = await import(pathToFileURL(modulePath(resource.apiVersion, resource.kind))));
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
