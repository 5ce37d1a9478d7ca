// Validates deploy/kubernetes/*.yaml (given as JSON documents on stdin, one
// array) against the Kubernetes and cert-manager schemas shipped by the npm
// packages kubernetes-models and @kubernetes-models/cert-manager (their
// models validate with ajv). Prints PASS:/FAIL: lines; used by
// deploy_manifests.sh, which installs the packages into a cache.
import { readFileSync } from "node:fs";
import { Namespace, Service } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { Issuer, Certificate } from "@kubernetes-models/cert-manager/cert-manager.io/v1";

const models = { Namespace, Service, Deployment, Job, Issuer, Certificate };
const docs = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const d of docs) {
  const name = `${d._file} ${d.kind}/${d.metadata?.name ?? "?"}`;
  delete d._file;
  if (d.kind === "Kustomization") continue;
  const M = models[d.kind];
  if (!M) { console.log(`FAIL: ${name}: no schema for kind ${d.kind}`); failed++; continue; }
  try {
    new M(d).validate();
    console.log(`PASS: ${name}: valid against the ${d.apiVersion} schema`);
  } catch (e) {
    failed++;
    console.log(`FAIL: ${name}: schema`);
    console.log(`    ${String(e.message).slice(0, 400)}`);
  }
}
process.exit(failed ? 1 : 0);
