import { beforeAll, describe, expect, it } from "vitest";
import { clusterContext, serviceAccountToken } from "../../harness/context.ts";
import { mustSucceed, renderKustomize } from "../../harness/fixtures.ts";

// Acting as the ServiceAccounts from config/default (real tokens from the TokenRequest
// API, checked by the real RBAC authorizer), every permission the components need is
// granted and a list of dangerous ones is not.
const { kubectl, kubectlWithToken, kubeConfig } = clusterContext();

interface Check {
  verb: string;
  resource: string;
  namespace?: string; // omitted: cluster-wide (--all-namespaces for namespaced resources)
  name?: string;
  subresource?: string;
}

const describeCheck = (c: Check) =>
  `${c.verb} ${c.resource}${c.subresource ? `/${c.subresource}` : ""}${c.name ? `/${c.name}` : ""} ${c.namespace ? `in ${c.namespace}` : "cluster-wide"}`;

let tokens: { controller: string; agent: string };

beforeAll(async () => {
  // Only the API objects: the workloads themselves are not needed to test authorization.
  const rendered = await renderKustomize(kubectl, "config/default", [
    "Namespace",
    "CustomResourceDefinition",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
  ]);
  mustSucceed(
    await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], rendered),
    "apply rbac",
  );
  const kc = kubeConfig();
  tokens = {
    controller: await serviceAccountToken(kc, "ms2m-system", "ms2m-controller"),
    agent: await serviceAccountToken(kc, "ms2m-system", "ms2m-agent"),
  };
});

async function canI(token: string, c: Check): Promise<boolean> {
  // TYPE/NAME names an object; a subresource needs its own flag.
  const args = ["auth", "can-i", c.verb, c.name ? `${c.resource}/${c.name}` : c.resource];
  if (c.subresource) args.push(`--subresource=${c.subresource}`);
  if (c.namespace) args.push("-n", c.namespace);
  else args.push("--all-namespaces");
  const res = await kubectlWithToken(token, args);
  if (res.stdout.trim() === "yes") return true;
  if (res.stdout.trim() === "no") return false;
  throw new Error(`kubectl auth can-i ${args.join(" ")}: ${res.stderr}`);
}

const controllerNeeds: Check[] = [
  ...["get", "list", "watch", "update", "patch"].map((verb) => ({
    verb,
    resource: "statefulmigrations.migration.ms2m.io",
  })),
  ...["get", "update", "patch"].map((verb) => ({
    verb,
    resource: "statefulmigrations.migration.ms2m.io",
    subresource: "status",
  })),
  { verb: "update", resource: "statefulmigrations.migration.ms2m.io", subresource: "finalizers" },
  ...["get", "list", "watch", "create", "delete", "patch"].map((verb) => ({ verb, resource: "pods" })),
  ...["get", "list", "watch"].map((verb) => ({ verb, resource: "nodes" })),
  ...["replicasets.apps", "deployments.apps", "statefulsets.apps"].flatMap((resource) =>
    ["get", "list", "watch", "patch"].map((verb) => ({ verb, resource })),
  ),
  ...["get", "list", "watch", "create", "delete"].map((verb) => ({ verb, resource: "jobs.batch" })),
  { verb: "create", resource: "events" },
  { verb: "create", resource: "events.events.k8s.io" },
  ...["get", "create", "update"].map((verb) => ({
    verb,
    resource: "leases.coordination.k8s.io",
    namespace: "ms2m-system",
  })),
  { verb: "get", resource: "secrets", name: "ms2m-agent-tls", namespace: "ms2m-system" },
  { verb: "update", resource: "secrets", name: "ms2m-agent-tls", namespace: "ms2m-system" },
];

const controllerMustNot: Check[] = [
  { verb: "list", resource: "secrets" },
  { verb: "get", resource: "secrets", namespace: "default" },
  { verb: "get", resource: "secrets", name: "other", namespace: "ms2m-system" },
  { verb: "delete", resource: "nodes" },
  { verb: "patch", resource: "nodes" },
  { verb: "create", resource: "nodes", subresource: "proxy" },
  { verb: "create", resource: "nodes", subresource: "checkpoint" },
  { verb: "create", resource: "pods", subresource: "exec", namespace: "default" },
  { verb: "create", resource: "clusterroles.rbac.authorization.k8s.io" },
  { verb: "escalate", resource: "clusterroles.rbac.authorization.k8s.io" },
  { verb: "bind", resource: "clusterroles.rbac.authorization.k8s.io" },
  { verb: "create", resource: "clusterrolebindings.rbac.authorization.k8s.io" },
  { verb: "impersonate", resource: "serviceaccounts" },
  { verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "default" },
  { verb: "delete", resource: "customresourcedefinitions.apiextensions.k8s.io" },
  { verb: "delete", resource: "leases.coordination.k8s.io", namespace: "kube-system" },
  { verb: "delete", resource: "deployments.apps" },
];

const agentNeeds: Check[] = [
  { verb: "create", resource: "nodes", subresource: "checkpoint" },
  { verb: "create", resource: "tokenreviews.authentication.k8s.io" },
  { verb: "create", resource: "subjectaccessreviews.authorization.k8s.io" },
  { verb: "get", resource: "secrets", name: "ms2m-agent-tls", namespace: "ms2m-system" },
];

const agentMustNot: Check[] = [
  { verb: "list", resource: "secrets" },
  { verb: "get", resource: "secrets", namespace: "default" },
  { verb: "get", resource: "secrets", name: "other", namespace: "ms2m-system" },
  { verb: "update", resource: "secrets", name: "ms2m-agent-tls", namespace: "ms2m-system" },
  { verb: "create", resource: "nodes", subresource: "proxy" },
  { verb: "get", resource: "nodes", subresource: "proxy" },
  { verb: "delete", resource: "nodes" },
  { verb: "create", resource: "pods" },
  { verb: "delete", resource: "pods" },
  { verb: "create", resource: "pods", subresource: "exec", namespace: "default" },
  { verb: "get", resource: "statefulmigrations.migration.ms2m.io" },
  { verb: "escalate", resource: "clusterroles.rbac.authorization.k8s.io" },
  { verb: "create", resource: "rolebindings.rbac.authorization.k8s.io", namespace: "ms2m-system" },
];

describe("controller ServiceAccount", () => {
  it.each(controllerNeeds.map((c) => [describeCheck(c), c] as const))("may %s", async (_d, c) => {
    expect(await canI(tokens.controller, c)).toBe(true);
  });
  it.each(controllerMustNot.map((c) => [describeCheck(c), c] as const))("may not %s", async (_d, c) => {
    expect(await canI(tokens.controller, c)).toBe(false);
  });
  it("reads a broker Secret only where a namespace owner granted it", async () => {
    const check = { verb: "get", resource: "secrets", namespace: "rbac-broker" };
    await kubectl(["create", "namespace", "rbac-broker"]);
    expect(await canI(tokens.controller, check)).toBe(false);
    mustSucceed(
      await kubectl([
        "-n",
        "rbac-broker",
        "create",
        "rolebinding",
        "ms2m-broker-secret-reader",
        "--clusterrole=ms2m-broker-secret-reader",
        "--serviceaccount=ms2m-system:ms2m-controller",
      ]),
      "rolebinding",
    );
    expect(await canI(tokens.controller, check)).toBe(true);
    expect(await canI(tokens.controller, { verb: "get", resource: "secrets", namespace: "default" })).toBe(
      false,
    );
  });
});

describe("agent ServiceAccount", () => {
  it.each(agentNeeds.map((c) => [describeCheck(c), c] as const))("may %s", async (_d, c) => {
    expect(await canI(tokens.agent, c)).toBe(true);
  });
  it.each(agentMustNot.map((c) => [describeCheck(c), c] as const))("may not %s", async (_d, c) => {
    expect(await canI(tokens.agent, c)).toBe(false);
  });
});

describe("optional node-proxy fallback component", () => {
  it("renders a separate ClusterRole granting nodes/proxy, not part of config/default", async () => {
    const fallback = mustSucceed(
      await kubectl(["kustomize", "config/components/node-proxy-fallback"]),
      "kustomize",
    );
    expect(fallback).toContain("nodes/proxy");
    const defaults = await renderKustomize(kubectl, "config/default");
    expect(defaults).not.toContain("nodes/proxy");
  });
});
