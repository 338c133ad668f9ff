// Metadata-only lists and watches (client-go's metadata informers): the API server sends each
// object as a PartialObjectMetadata, its metadata alone, instead of the whole object. For
// watches whose handlers only read names, namespaces and labels this is the same event stream
// (every change of the object still arrives, with its new resourceVersion) for a fraction of the
// bytes to parse and keep: a pod's spec and status, a node's images and conditions, a
// Deployment's last-applied annotation are never sent.
import type { KubeConfig, KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import { KubeRest } from "./rest.ts";

/** Accept header of a metadata-only watch (the plain-JSON fallback for servers that lack it). */
export const PARTIAL_OBJECT_METADATA =
  "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";
/** Accept header of a metadata-only list. */
export const PARTIAL_OBJECT_METADATA_LIST =
  "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

/**
 * GET `path` (a collection, e.g. `/api/v1/pods`) as a PartialObjectMetadataList, through the
 * KubeConfig's authentication and connection pool. Failures throw client-node's ApiException, as
 * its generated clients do.
 */
export async function listMetadata(
  kc: KubeConfig,
  path: string,
): Promise<KubernetesListObject<KubernetesObject>> {
  return new KubeRest(kc).list(path, undefined, PARTIAL_OBJECT_METADATA_LIST);
}

/**
 * The object reduced to the metadata a watch's handlers read: name, namespace, uid,
 * resourceVersion, labels, owner references and the deletion mark (no managedFields or
 * annotations). For informer caches whose readers are map functions and decisions on
 * ownership (a pod adopted by its ReplicaSet) or deletion.
 */
export function slimMetadata<T extends KubernetesObject>(obj: T): T {
  const m = obj.metadata;
  if (!m) return obj;
  return {
    ...(obj.apiVersion !== undefined ? { apiVersion: obj.apiVersion } : {}),
    ...(obj.kind !== undefined ? { kind: obj.kind } : {}),
    metadata: {
      ...(m.name !== undefined ? { name: m.name } : {}),
      ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
      ...(m.uid !== undefined ? { uid: m.uid } : {}),
      ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
      ...(m.labels !== undefined ? { labels: m.labels } : {}),
      ...(m.ownerReferences !== undefined ? { ownerReferences: m.ownerReferences } : {}),
      ...(m.deletionTimestamp !== undefined ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
  } as T;
}
