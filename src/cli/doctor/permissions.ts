// What ms2m's ServiceAccounts must be allowed to do, asked of the API server with
// SubjectAccessReviews (as the ServiceAccount, not as the user running doctor). Each entry is
// granted by config/rbac (test/unit/cli/doctor/permissions.test.ts checks that every one is, so
// doctor never reports a permission the manifests do not give). "cluster": cluster-wide (a
// ClusterRoleBinding); "system": in ms2m's namespace (a Role).
export interface Permission {
  serviceAccount: "ms2m-controller" | "ms2m-agent" | "ms2m-transfer";
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
  scope: "cluster" | "system";
  /** Why ms2m needs it (said when it is missing). */
  why: string;
}

const controller = (
  verb: string,
  group: string,
  resource: string,
  why: string,
  extra: Partial<Permission> = {},
): Permission => ({
  serviceAccount: "ms2m-controller",
  verb,
  group,
  resource,
  scope: "cluster",
  why,
  ...extra,
});

export const requiredPermissions: Permission[] = [
  ...["get", "list", "watch", "update", "patch"].map((v) =>
    controller(v, "migration.ms2m.io", "statefulmigrations", "to reconcile StatefulMigrations"),
  ),
  controller("update", "migration.ms2m.io", "statefulmigrations", "to write a migration's status", {
    subresource: "status",
  }),
  controller("update", "migration.ms2m.io", "statefulmigrations", "to release a migration's finalizer", {
    subresource: "finalizers",
  }),
  ...["get", "list", "watch", "create", "delete", "patch"].map((v) =>
    controller(v, "", "pods", "to create the target pod and hand the source over"),
  ),
  ...["get", "list", "watch"].map((v) => controller(v, "", "nodes", "to check target nodes")),
  ...["replicasets", "deployments", "statefulsets"].flatMap((r) =>
    ["get", "list", "watch"].map((v) =>
      controller(v, "apps", r, "to detect the strategy from the pod's owner"),
    ),
  ),
  ...["checkpoint", "send", "pull"].map((s) =>
    controller("create", "migration.ms2m.io", "agents", "to command the node agents", { subresource: s }),
  ),
  controller("get", "migration.ms2m.io", "agents", "for the runtime preflight", { subresource: "runtime" }),
  controller("create", "", "events", "to record Events"),
  ...["get", "create", "update"].map((v) =>
    controller(v, "coordination.k8s.io", "leases", "for leader election", { scope: "system" }),
  ),
  ...["ms2m-agent-tls", "ms2m-agent-ca"].flatMap((name) =>
    ["get", "update"].map((v) =>
      controller(v, "", "secrets", "to issue the agents' TLS certificate", { scope: "system", name }),
    ),
  ),
  controller("create", "", "secrets", "to issue the agents' TLS certificate", { scope: "system" }),
  ...["get", "list", "watch", "create", "delete"].map((v) =>
    controller(v, "batch", "jobs", "for transfer Jobs on nodes without an agent", { scope: "system" }),
  ),
  {
    serviceAccount: "ms2m-agent",
    verb: "create",
    group: "",
    resource: "nodes",
    subresource: "checkpoint",
    scope: "cluster",
    why: "to checkpoint through the local kubelet",
  },
  ...(["tokenreviews", "subjectaccessreviews"] as const).map((r): Permission => ({
    serviceAccount: "ms2m-agent",
    verb: "create",
    group: r === "tokenreviews" ? "authentication.k8s.io" : "authorization.k8s.io",
    resource: r,
    scope: "cluster",
    why: "to authenticate and authorize its callers",
  })),
  {
    serviceAccount: "ms2m-agent",
    verb: "create",
    group: "migration.ms2m.io",
    resource: "agents",
    subresource: "receive",
    scope: "cluster",
    why: "to receive archives from other agents (Direct)",
  },
  {
    serviceAccount: "ms2m-agent",
    verb: "get",
    group: "",
    resource: "secrets",
    name: "ms2m-agent-tls",
    scope: "system",
    why: "to read its TLS certificate",
  },
  {
    serviceAccount: "ms2m-transfer",
    verb: "create",
    group: "migration.ms2m.io",
    resource: "agents",
    subresource: "receive",
    scope: "cluster",
    why: "for transfer Jobs to push into the target agent",
  },
];

/** `create nodes/checkpoint (cluster)`, `get secrets ms2m-agent-tls (in ms2m-system)`. */
export function describePermission(p: Permission, systemNamespace: string): string {
  const resource = `${p.group ? `${p.resource}.${p.group}` : p.resource}${p.subresource ? `/${p.subresource}` : ""}`;
  const where = p.scope === "cluster" ? "cluster-wide" : `in ${systemNamespace}`;
  return `${p.verb} ${resource}${p.name ? ` ${p.name}` : ""} ${where}`;
}
