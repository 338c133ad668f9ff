// helm uninstall's post-delete hook (templates/uninstall-cleanup.yaml): deletes what the ms2m
// controller created at run time in its namespace, which no release manifest names: the agents'
// TLS and CA Secrets, the leader-election Lease, and transfer/cleanup Jobs still there. Runs in
// the controller image (`node` on this file); talks to the API server with its own
// ServiceAccount, whose Role allows exactly these deletes.
/* global process, fetch, AbortSignal */
import { readFileSync } from "node:fs";

const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
const namespace = readFileSync(`${sa}/namespace`, "utf8").trim();
const token = readFileSync(`${sa}/token`, "utf8").trim();
const host = process.env.KUBERNETES_SERVICE_HOST ?? "kubernetes.default.svc";
const port = process.env.KUBERNETES_SERVICE_PORT ?? "443";
const base = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
const secrets = (process.env.MS2M_SECRETS ?? "").split(",").filter(Boolean);
const leases = (process.env.MS2M_LEASES ?? "").split(",").filter(Boolean);
const jobSelector = process.env.MS2M_JOB_SELECTOR ?? "";

async function call(method, path) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: "application/json" },
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const done = [];
for (const name of secrets) {
  if (await call("DELETE", `/api/v1/namespaces/${namespace}/secrets/${name}`)) done.push(`secret/${name}`);
}
for (const name of leases) {
  const path = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${name}`;
  if (await call("DELETE", path)) done.push(`lease/${name}`);
}
if (jobSelector) {
  const jobs = await call(
    "GET",
    `/apis/batch/v1/namespaces/${namespace}/jobs?labelSelector=${encodeURIComponent(jobSelector)}`,
  );
  for (const job of jobs?.items ?? []) {
    const name = job.metadata.name;
    const path = `/apis/batch/v1/namespaces/${namespace}/jobs/${name}?propagationPolicy=Background`;
    if (await call("DELETE", path)) done.push(`job/${name}`);
  }
}
const summary = done.length ? done.join(", ") : "nothing left to delete";
process.stdout.write(`ms2m uninstall cleanup in ${namespace}: ${summary}\n`);
