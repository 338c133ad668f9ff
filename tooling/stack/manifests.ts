import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import type { KubectlResult } from "./env.ts";

export const repoPath = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));

type Kubectl = (args: string[], input?: string) => Promise<KubectlResult>;

export function mustSucceed(res: KubectlResult, what: string): string {
  if (res.code !== 0) throw new Error(`${what} failed (exit ${res.code}): ${res.stderr}`);
  return res.stdout;
}

/** Installs the generated CRDs (idempotent) and waits until they are Established. */
export async function installCrd(kubectl: Kubectl): Promise<void> {
  mustSucceed(
    await kubectl(["apply", "--server-side", "--force-conflicts", "-k", repoPath("crd")]),
    "apply CRDs",
  );
  mustSucceed(
    await kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/statefulmigrations.migration.ms2m.io",
      "crd/migrationpolicies.migration.ms2m.io",
    ]),
    "wait for CRDs",
  );
}

/** Objects rendered by `kubectl kustomize <dir>`, optionally filtered by kind. */
export async function renderKustomize(kubectl: Kubectl, dir: string, kinds?: string[]): Promise<string> {
  const out = mustSucceed(await kubectl(["kustomize", repoPath(dir)]), `kustomize ${dir}`);
  if (!kinds) return out;
  return parseAllDocuments(out)
    .map((d) => d.toJS() as { kind?: string })
    .filter((o) => o.kind && kinds.includes(o.kind))
    .map((o) => `---\n${JSON.stringify(o)}\n`)
    .join("");
}

export async function readRepoFile(rel: string): Promise<string> {
  return readFile(repoPath(rel), "utf8");
}

/** The API objects of config/default (CRD, namespace, ServiceAccounts, RBAC), without workloads. */
export const MS2M_API_OBJECTS = [
  "Namespace",
  "CustomResourceDefinition",
  "ServiceAccount",
  "ClusterRole",
  "ClusterRoleBinding",
  "Role",
  "RoleBinding",
];

/** Applies ms2m's CRD, namespace, ServiceAccounts and RBAC from config/default (idempotent). */
export async function installMs2mApi(kubectl: Kubectl): Promise<void> {
  const rendered = await renderKustomize(kubectl, "config/default", MS2M_API_OBJECTS);
  mustSucceed(
    await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], rendered),
    "apply ms2m API objects",
  );
}
