// ClusterPort over @kubernetes/client-node. Every call is a live request; errors become
// Ms2mError with the API server's Status reason.
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { group, plural, version, type StatefulMigration } from "../../api/v1alpha1/index.ts";
import { getOrUndefined, kubeCall } from "../../kube/errors.ts";
import { addFinalizerPatch, removeFinalizerPatch } from "../../kube/finalizers.ts";
import { jsonPatchOptions, mergePatchOptions, FIELD_MANAGER } from "../../kube/patch.ts";
import type { ClusterPort, DeleteOptions } from "../ports.ts";

export class KubeCluster implements ClusterPort {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  getMigration(namespace: string, name: string) {
    return getOrUndefined(
      () =>
        this.custom.getNamespacedCustomObject({
          group,
          version,
          plural,
          namespace,
          name,
        }) as Promise<StatefulMigration>,
      `get StatefulMigration ${namespace}/${name}`,
    );
  }

  updateMigrationStatus(m: StatefulMigration) {
    const namespace = m.metadata.namespace ?? "";
    const name = m.metadata.name ?? "";
    return kubeCall(
      () =>
        this.custom.replaceNamespacedCustomObjectStatus({
          group,
          version,
          plural,
          namespace,
          name,
          body: m,
          fieldManager: FIELD_MANAGER,
        }) as Promise<StatefulMigration>,
      `update status of ${namespace}/${name}`,
    );
  }

  async addMigrationFinalizer(m: StatefulMigration, finalizer: string) {
    const ops = addFinalizerPatch(m, finalizer);
    if (!ops) return m;
    return this.patchMigration(m, ops) as Promise<StatefulMigration>;
  }

  async removeMigrationFinalizer(m: StatefulMigration, finalizer: string) {
    const ops = removeFinalizerPatch(m, finalizer);
    if (!ops) return m;
    return getOrUndefined(() => this.patchMigration(m, ops) as Promise<StatefulMigration>);
  }

  private patchMigration(m: StatefulMigration, body: object[]) {
    const namespace = m.metadata.namespace ?? "";
    const name = m.metadata.name ?? "";
    return kubeCall(
      () =>
        this.custom.patchNamespacedCustomObject(
          { group, version, plural, namespace, name, body },
          jsonPatchOptions(),
        ),
      `patch ${namespace}/${name}`,
    );
  }

  getPod(namespace: string, name: string) {
    return getOrUndefined(
      () => this.core.readNamespacedPod({ namespace, name }),
      `get pod ${namespace}/${name}`,
    );
  }
  createPod(namespace: string, body: V1Pod) {
    return kubeCall(
      () => this.core.createNamespacedPod({ namespace, body, fieldManager: FIELD_MANAGER }),
      `create pod ${namespace}/${body.metadata?.name}`,
    );
  }
  mergePatchPod(namespace: string, name: string, body: object) {
    return kubeCall(
      () =>
        this.core.patchNamespacedPod(
          { namespace, name, body, fieldManager: FIELD_MANAGER },
          mergePatchOptions(),
        ),
      `patch pod ${namespace}/${name}`,
    );
  }
  jsonPatchPod(namespace: string, name: string, body: object[]) {
    return kubeCall(
      () =>
        this.core.patchNamespacedPod(
          { namespace, name, body, fieldManager: FIELD_MANAGER },
          jsonPatchOptions(),
        ),
      `patch pod ${namespace}/${name}`,
    );
  }
  async deletePod(namespace: string, name: string, opts: DeleteOptions = {}) {
    await kubeCall(
      () =>
        this.core.deleteNamespacedPod({
          namespace,
          name,
          ...(opts.gracePeriodSeconds !== undefined ? { gracePeriodSeconds: opts.gracePeriodSeconds } : {}),
          ...(opts.uid ? { body: { preconditions: { uid: opts.uid } } } : {}),
        }),
      `delete pod ${namespace}/${name}`,
    );
  }
  getNode(name: string) {
    return getOrUndefined(() => this.core.readNode({ name }), `get node ${name}`);
  }
  async listNodes() {
    return (await kubeCall(() => this.core.listNode(), "list nodes")).items;
  }
  async listPodsOnNode(node: string) {
    return (
      await kubeCall(
        () => this.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` }),
        `list pods on ${node}`,
      )
    ).items;
  }
  getReplicaSet(namespace: string, name: string) {
    return getOrUndefined(() => this.apps.readNamespacedReplicaSet({ namespace, name }));
  }
  getStatefulSet(namespace: string, name: string) {
    return getOrUndefined(() => this.apps.readNamespacedStatefulSet({ namespace, name }));
  }
  async getSecretKey(namespace: string, name: string, key: string) {
    const secret = await getOrUndefined(() => this.core.readNamespacedSecret({ namespace, name }));
    const value = secret?.data?.[key];
    return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
  }
}
