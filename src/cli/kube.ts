// The cluster as kubectl would reach it: --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else
// the in-cluster ServiceAccount; --context; the namespace from -n or the context.
import * as k8s from "@kubernetes/client-node";
import { PooledKubeConfig } from "../kube/config.ts";
import { describeError, isMs2mError } from "../common/errors.ts";
import { getOrUndefined, kubeCall } from "../kube/errors.ts";
import { group, kind, plural, version, type StatefulMigration } from "../api/v1alpha1/statefulmigration.ts";

export interface KubeOptions {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

export interface Kube {
  kc: PooledKubeConfig;
  /** -n, else the context's namespace, else default. */
  namespace: string;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  custom: k8s.CustomObjectsApi;
  close(): Promise<void>;
}

export function connect(options: KubeOptions): Kube {
  const kc = new PooledKubeConfig();
  try {
    if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    const which = options.kubeconfig ?? process.env.KUBECONFIG ?? "~/.kube/config";
    throw new Error(`cannot load the kubeconfig ${which}: ${describeError(err)}`, { cause: err });
  }
  if (options.context) {
    if (!kc.getContextObject(options.context)) throw new Error(`context "${options.context}" not found`);
    kc.setCurrentContext(options.context);
  }
  if (!kc.getCurrentCluster()) throw new Error("no cluster configured: set KUBECONFIG or use --kubeconfig");
  const contextNs = kc.getContextObject(kc.getCurrentContext())?.namespace;
  return {
    kc,
    namespace: options.namespace || contextNs || "default",
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    close: () => kc.closeConnections(),
  };
}

const ref = { group, version, plural };

export function getMigration(
  kube: Kube,
  namespace: string,
  name: string,
): Promise<StatefulMigration | undefined> {
  return getOrUndefined(
    () => kube.custom.getNamespacedCustomObject({ ...ref, namespace, name }) as Promise<StatefulMigration>,
    `get statefulmigration ${namespace}/${name}`,
  );
}

export async function listMigrations(
  kube: Kube,
  namespace: string | undefined,
): Promise<StatefulMigration[]> {
  try {
    const res = (await kubeCall(
      () =>
        namespace
          ? kube.custom.listNamespacedCustomObject({ ...ref, namespace })
          : kube.custom.listClusterCustomObject(ref),
      "list statefulmigrations",
    )) as { items: StatefulMigration[] };
    return res.items;
  } catch (err) {
    // A list of a resource the API server does not serve: the CRD is missing.
    if (isMs2mError(err, "NotFound"))
      throw new Error(
        `the cluster does not serve ${plural}.${group}/${version}: is ms2m installed? (kubectl ms2m doctor)`,
        { cause: err },
      );
    throw err;
  }
}

export function createMigration(kube: Kube, namespace: string, body: object): Promise<StatefulMigration> {
  return kubeCall(
    () => kube.custom.createNamespacedCustomObject({ ...ref, namespace, body }) as Promise<StatefulMigration>,
    "create statefulmigration",
  );
}

export function deleteMigration(kube: Kube, namespace: string, name: string): Promise<unknown> {
  return kubeCall(
    () => kube.custom.deleteNamespacedCustomObject({ ...ref, namespace, name }),
    `delete statefulmigration ${namespace}/${name}`,
  );
}

/** A migration's Events, oldest first (only this object's, by uid, where it is known). */
export async function migrationEvents(
  kube: Kube,
  namespace: string,
  name: string,
  uid: string | undefined,
): Promise<k8s.CoreV1Event[]> {
  const list = await kubeCall(
    () =>
      kube.core.listNamespacedEvent({
        namespace,
        fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
      }),
    `list events of statefulmigration ${namespace}/${name}`,
  );
  const time = (e: k8s.CoreV1Event) =>
    new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? 0).getTime();
  return list.items
    .filter((e) => !uid || !e.involvedObject.uid || e.involvedObject.uid === uid)
    .sort((a, b) => time(a) - time(b));
}
