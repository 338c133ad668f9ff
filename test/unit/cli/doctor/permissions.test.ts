import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import {
  describePermission,
  requiredPermissions,
  type Permission,
} from "../../../../src/cli/doctor/permissions.ts";

// doctor asks the API server whether ms2m's ServiceAccounts have each of requiredPermissions;
// every one must be granted by config/rbac (the chart renders the same files), so doctor never
// reports a permission the manifests do not give. A small RBAC evaluator over the manifests.
const dir = fileURLToPath(new URL("../../../../config/rbac/", import.meta.url));
const SYSTEM = "ms2m-system";

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}
interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Rule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

const objects = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
  .flatMap((f) => parseAllDocuments(readFileSync(`${dir}${f}`, "utf8")).map((d) => d.toJS() as Obj))
  .filter((o) => o?.kind);

const matches = (rule: Rule, p: Permission) => {
  const resource = p.subresource ? `${p.resource}/${p.subresource}` : p.resource;
  const any = (list: string[] | undefined, value: string) =>
    Boolean(list?.includes("*") || list?.includes(value));
  return (
    any(rule.apiGroups, p.group) &&
    any(rule.resources, resource) &&
    any(rule.verbs, p.verb) &&
    (!rule.resourceNames?.length || (p.name !== undefined && rule.resourceNames.includes(p.name)))
  );
};

/** Whether a binding of the ServiceAccount grants the permission where it is needed. */
function granted(p: Permission): boolean {
  const bound = (b: Obj) =>
    b.subjects?.some(
      (s) =>
        s.kind === "ServiceAccount" &&
        s.name === p.serviceAccount &&
        (s.namespace ?? b.metadata.namespace) === SYSTEM,
    );
  const role = (kind: string, name: string, namespace?: string) =>
    objects.find(
      (o) =>
        o.kind === kind &&
        o.metadata.name === name &&
        (kind === "ClusterRole" || o.metadata.namespace === namespace),
    );
  for (const b of objects) {
    if (!bound(b)) continue;
    const inScope =
      b.kind === "ClusterRoleBinding" ||
      (b.kind === "RoleBinding" && p.scope === "system" && b.metadata.namespace === SYSTEM);
    if (!inScope || !b.roleRef) continue;
    const r = role(b.roleRef.kind, b.roleRef.name, b.metadata.namespace);
    if (r?.rules?.some((rule) => matches(rule, p))) return true;
  }
  return false;
}

describe("doctor's required permissions", () => {
  it("the evaluator sees the manifests' bindings", () => {
    expect(objects.filter((o) => o.kind.endsWith("Binding")).length).toBeGreaterThanOrEqual(5);
    expect(
      granted({
        serviceAccount: "ms2m-agent",
        verb: "delete",
        group: "",
        resource: "nodes",
        scope: "cluster",
        why: "",
      }),
    ).toBe(false);
    expect(
      granted({
        serviceAccount: "ms2m-controller",
        verb: "get",
        group: "",
        resource: "secrets",
        name: "other",
        scope: "system",
        why: "",
      }),
    ).toBe(false);
  });

  it.each(
    requiredPermissions.map((p) => [`${p.serviceAccount}: ${describePermission(p, SYSTEM)}`, p] as const),
  )("%s is granted by config/rbac", (_, p) => expect(granted(p)).toBe(true));

  it("describePermission", () => {
    const [checkpoint] = requiredPermissions.filter(
      (p) => p.subresource === "checkpoint" && p.serviceAccount === "ms2m-agent",
    );
    expect(describePermission(checkpoint!, SYSTEM)).toBe("create nodes/checkpoint cluster-wide");
    const tls = requiredPermissions.find(
      (p) => p.serviceAccount === "ms2m-agent" && p.name === "ms2m-agent-tls",
    );
    expect(describePermission(tls!, SYSTEM)).toBe("get secrets ms2m-agent-tls in ms2m-system");
    const status = requiredPermissions.find((p) => p.subresource === "status");
    expect(describePermission(status!, SYSTEM)).toBe(
      "update statefulmigrations.migration.ms2m.io/status cluster-wide",
    );
  });
});
