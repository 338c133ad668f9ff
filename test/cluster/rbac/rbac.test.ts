import { beforeAll, describe, expect, it } from "vitest";
import * as k8s from "@kubernetes/client-node";
import { clusterContext, serviceAccountToken } from "../../harness/context.ts";
import { installMs2mApi, mustSucceed, renderKustomize } from "../../../tooling/stack/manifests.ts";

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

let tokens: { controller: string; agent: string; transfer: string };

beforeAll(async () => {
  // Only the API objects: the workloads themselves are not needed to test authorization.
  await installMs2mApi(kubectl);
  const kc = kubeConfig();
  tokens = {
    controller: await serviceAccountToken(kc, "ms2m-system", "ms2m-controller"),
    agent: await serviceAccountToken(kc, "ms2m-system", "ms2m-agent"),
    transfer: await serviceAccountToken(kc, "ms2m-system", "ms2m-transfer"),
  };
});

/**
 * Asks the API server, with the ServiceAccount's own token, whether it may do something
 * (a SelfSubjectAccessReview: what `kubectl auth can-i` sends). Direct use also covers the
 * virtual `agents/*` resources the agents authorize with, which discovery does not list.
 */
async function canI(token: string, c: Check): Promise<boolean> {
  const dot = c.resource.indexOf(".");
  const resource = dot < 0 ? c.resource : c.resource.slice(0, dot);
  const group = dot < 0 ? "" : c.resource.slice(dot + 1);
  const kc = new k8s.KubeConfig();
  const admin = kubeConfig().getCurrentCluster()!;
  kc.loadFromOptions({
    clusters: [admin],
    users: [{ name: "sa", token }],
    contexts: [{ name: "sa", cluster: admin.name, user: "sa" }],
    currentContext: "sa",
  });
  const review = await kc.makeApiClient(k8s.AuthorizationV1Api).createSelfSubjectAccessReview({
    body: {
      spec: {
        resourceAttributes: {
          verb: c.verb,
          resource,
          group,
          ...(c.subresource ? { subresource: c.subresource } : {}),
          ...(c.name ? { name: c.name } : {}),
          ...(c.namespace ? { namespace: c.namespace } : {}),
        },
      },
    },
  });
  return review.status?.allowed === true;
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
    ["get", "list", "watch"].map((verb) => ({ verb, resource })),
  ),
  ...["checkpoint", "send", "pull"].map((subresource) => ({
    verb: "create",
    resource: "agents.migration.ms2m.io",
    subresource,
  })),
  { verb: "create", resource: "events" },
  { verb: "create", resource: "events.events.k8s.io" },
  ...["get", "create", "update"].map((verb) => ({
    verb,
    resource: "leases.coordination.k8s.io",
    namespace: "ms2m-system",
  })),
  { verb: "get", resource: "secrets", name: "ms2m-agent-tls", namespace: "ms2m-system" },
  { verb: "update", resource: "secrets", name: "ms2m-agent-tls", namespace: "ms2m-system" },
  { verb: "create", resource: "secrets", namespace: "ms2m-system" },
  { verb: "get", resource: "secrets", name: "ms2m-agent-ca", namespace: "ms2m-system" },
  { verb: "update", resource: "secrets", name: "ms2m-agent-ca", namespace: "ms2m-system" },
  // Transfer Jobs, in its own namespace only.
  ...["get", "list", "watch", "create", "delete"].map((verb) => ({
    verb,
    resource: "jobs.batch",
    namespace: "ms2m-system",
  })),
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
  // Only agents receive archives.
  { verb: "create", resource: "agents.migration.ms2m.io", subresource: "receive" },
  { verb: "create", resource: "clusterrolebindings.rbac.authorization.k8s.io" },
  { verb: "impersonate", resource: "serviceaccounts" },
  { verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "default" },
  { verb: "delete", resource: "customresourcedefinitions.apiextensions.k8s.io" },
  { verb: "delete", resource: "leases.coordination.k8s.io", namespace: "kube-system" },
  { verb: "delete", resource: "deployments.apps" },
  // The hand-over never scales or edits workloads.
  { verb: "patch", resource: "statefulsets.apps" },
  { verb: "update", resource: "statefulsets", subresource: "scale" },
  { verb: "patch", resource: "replicasets.apps" },
  { verb: "create", resource: "jobs.batch" },
  { verb: "create", resource: "jobs.batch", namespace: "default" },
];

const agentNeeds: Check[] = [
  { verb: "create", resource: "agents.migration.ms2m.io", subresource: "receive" },
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
  { verb: "get", resource: "secrets", name: "ms2m-agent-ca", namespace: "ms2m-system" },
  { verb: "create", resource: "nodes", subresource: "proxy" },
  { verb: "get", resource: "nodes", subresource: "proxy" },
  { verb: "delete", resource: "nodes" },
  { verb: "create", resource: "pods" },
  { verb: "delete", resource: "pods" },
  { verb: "create", resource: "pods", subresource: "exec", namespace: "default" },
  { verb: "get", resource: "statefulmigrations.migration.ms2m.io" },
  // An agent cannot command other agents: only the controller can.
  { verb: "create", resource: "agents.migration.ms2m.io", subresource: "send" },
  { verb: "create", resource: "agents.migration.ms2m.io", subresource: "checkpoint" },
  { verb: "escalate", resource: "clusterroles.rbac.authorization.k8s.io" },
  { verb: "create", resource: "rolebindings.rbac.authorization.k8s.io", namespace: "ms2m-system" },
];

// The transfer Job: pushes an archive into a target agent, nothing else.
const transferNeeds: Check[] = [
  { verb: "create", resource: "agents.migration.ms2m.io", subresource: "receive" },
];
const transferMustNot: Check[] = [
  { verb: "create", resource: "agents.migration.ms2m.io", subresource: "send" },
  { verb: "create", resource: "agents.migration.ms2m.io", subresource: "checkpoint" },
  { verb: "get", resource: "pods", namespace: "ms2m-system" },
  { verb: "patch", resource: "pods", namespace: "ms2m-system" },
  { verb: "get", resource: "secrets", name: "ms2m-agent-tls", namespace: "ms2m-system" },
  { verb: "create", resource: "nodes", subresource: "checkpoint" },
  { verb: "create", resource: "tokenreviews.authentication.k8s.io" },
  { verb: "get", resource: "statefulmigrations.migration.ms2m.io" },
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

describe("transfer Job ServiceAccount", () => {
  it.each(transferNeeds.map((c) => [describeCheck(c), c] as const))("may %s", async (_d, c) => {
    expect(await canI(tokens.transfer, c)).toBe(true);
  });
  it.each(transferMustNot.map((c) => [describeCheck(c), c] as const))("may not %s", async (_d, c) => {
    expect(await canI(tokens.transfer, c)).toBe(false);
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

describe("with the real kubectl and a ServiceAccount token", () => {
  it("answers like the access reviews", async () => {
    const yes = await kubectlWithToken(tokens.controller, [
      "auth",
      "can-i",
      "create",
      "pods",
      "-n",
      "default",
    ]);
    expect(yes.stdout.trim()).toBe("yes");
    const no = await kubectlWithToken(tokens.controller, [
      "auth",
      "can-i",
      "list",
      "secrets",
      "--all-namespaces",
    ]);
    expect(no.stdout.trim()).toBe("no");
    const denied = await kubectlWithToken(tokens.agent, ["get", "pods", "-n", "default"]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain("forbidden");
  });
});
