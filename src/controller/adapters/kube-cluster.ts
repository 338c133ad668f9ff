// ClusterPort over the Kubernetes REST API (kube/rest.ts: plain JSON, the pooled connections of
// the KubeConfig). Every call is a live request; errors become Ms2mError with the API server's
// Status reason.
import type {
  KubeConfig,
  V1Node,
  V1Pod,
  V1ReplicaSet,
  V1Secret,
  V1StatefulSet,
} from "@kubernetes/client-node";
import { group, plural, version, type StatefulMigration } from "../../api/v1alpha1/index.ts";
import { getOrUndefined, kubeCall } from "../../kube/errors.ts";
import { addFinalizerPatch, removeFinalizerPatch } from "../../kube/finalizers.ts";
import { KubeRest, resourcePath } from "../../kube/rest.ts";
import type { ClusterPort, DeleteOptions } from "../ports.ts";

const migrationPath = (namespace: string, name: string, subresource?: string) =>
  resourcePath({ group, version, plural, namespace, name, subresource });
const podPath = (namespace: string, name?: string) =>
  resourcePath({ version: "v1", plural: "pods", namespace, name });

export class KubeCluster implements ClusterPort {
  readonly rest: KubeRest;

  constructor(kc: KubeConfig) {
    this.rest = new KubeRest(kc);
  }

  getMigration(namespace: string, name: string) {
    return getOrUndefined(
      () => this.rest.get<StatefulMigration>(migrationPath(namespace, name)),
      `get StatefulMigration ${namespace}/${name}`,
    );
  }

  updateMigrationStatus(m: StatefulMigration) {
    const namespace = m.metadata.namespace ?? "";
    const name = m.metadata.name ?? "";
    return kubeCall(
      () => this.rest.replace<StatefulMigration>(migrationPath(namespace, name, "status"), m),
      `update status of ${namespace}/${name}`,
    );
  }

  async addMigrationFinalizer(m: StatefulMigration, finalizer: string) {
    const ops = addFinalizerPatch(m, finalizer);
    if (!ops) return m;
    return this.patchMigration(m, ops);
  }

  async removeMigrationFinalizer(m: StatefulMigration, finalizer: string) {
    const ops = removeFinalizerPatch(m, finalizer);
    if (!ops) return m;
    return getOrUndefined(() => this.patchMigration(m, ops));
  }

  private patchMigration(m: StatefulMigration, ops: object[]) {
    const namespace = m.metadata.namespace ?? "";
    const name = m.metadata.name ?? "";
    return kubeCall(
      () => this.rest.patch<StatefulMigration>(migrationPath(namespace, name), "json", ops),
      `patch ${namespace}/${name}`,
    );
  }

  getPod(namespace: string, name: string) {
    return getOrUndefined(
      () => this.rest.get<V1Pod>(podPath(namespace, name)),
      `get pod ${namespace}/${name}`,
    );
  }
  createPod(namespace: string, body: V1Pod) {
    return kubeCall(
      () => this.rest.create<V1Pod>(podPath(namespace), body),
      `create pod ${namespace}/${body.metadata?.name}`,
    );
  }
  mergePatchPod(namespace: string, name: string, body: object) {
    return kubeCall(
      () => this.rest.patch<V1Pod>(podPath(namespace, name), "merge", body),
      `patch pod ${namespace}/${name}`,
    );
  }
  jsonPatchPod(namespace: string, name: string, ops: object[]) {
    return kubeCall(
      () => this.rest.patch<V1Pod>(podPath(namespace, name), "json", ops),
      `patch pod ${namespace}/${name}`,
    );
  }
  async deletePod(namespace: string, name: string, opts: DeleteOptions = {}) {
    await kubeCall(
      () =>
        this.rest.delete(
          podPath(namespace, name),
          opts.gracePeriodSeconds !== undefined ? { gracePeriodSeconds: opts.gracePeriodSeconds } : undefined,
          opts.uid ? { preconditions: { uid: opts.uid } } : undefined,
        ),
      `delete pod ${namespace}/${name}`,
    );
  }
  getNode(name: string) {
    return getOrUndefined(
      () => this.rest.get<V1Node>(resourcePath({ version: "v1", plural: "nodes", name })),
      `get node ${name}`,
    );
  }
  async listNodes() {
    return (
      await kubeCall(
        () => this.rest.list<V1Node>(resourcePath({ version: "v1", plural: "nodes" })),
        "list nodes",
      )
    ).items;
  }
  async listPodsOnNode(node: string) {
    return (
      await kubeCall(
        () =>
          this.rest.list<V1Pod>(resourcePath({ version: "v1", plural: "pods" }), {
            fieldSelector: `spec.nodeName=${node}`,
          }),
        `list pods on ${node}`,
      )
    ).items;
  }
  getReplicaSet(namespace: string, name: string) {
    return getOrUndefined(
      () =>
        this.rest.get<V1ReplicaSet>(
          resourcePath({ group: "apps", version: "v1", plural: "replicasets", namespace, name }),
        ),
      `get ReplicaSet ${namespace}/${name}`,
    );
  }
  getStatefulSet(namespace: string, name: string) {
    return getOrUndefined(
      () =>
        this.rest.get<V1StatefulSet>(
          resourcePath({ group: "apps", version: "v1", plural: "statefulsets", namespace, name }),
        ),
      `get StatefulSet ${namespace}/${name}`,
    );
  }
  async getSecretKey(namespace: string, name: string, key: string) {
    const secret = await getOrUndefined(
      () => this.rest.get<V1Secret>(resourcePath({ version: "v1", plural: "secrets", namespace, name })),
      `get Secret ${namespace}/${name}`,
    );
    const value = secret?.data?.[key];
    return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
  }
}
