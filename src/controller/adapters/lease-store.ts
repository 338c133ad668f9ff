// LeaseStore over coordination.k8s.io/v1 Leases.
import type { KubeConfig, V1Lease } from "@kubernetes/client-node";
import { getOrUndefined, kubeCall } from "../../kube/errors.ts";
import { KubeRest, resourcePath } from "../../kube/rest.ts";
import type { LeaseRecord, LeaseStore } from "../../engine/leaderelection.ts";

const toRecord = (l: V1Lease): LeaseRecord => ({
  ...(l.spec?.holderIdentity !== undefined ? { holderIdentity: l.spec.holderIdentity } : {}),
  ...(l.spec?.leaseDurationSeconds !== undefined
    ? { leaseDurationSeconds: l.spec.leaseDurationSeconds }
    : {}),
  ...(l.spec?.acquireTime ? { acquireTime: new Date(l.spec.acquireTime).toISOString() } : {}),
  ...(l.spec?.renewTime ? { renewTime: new Date(l.spec.renewTime).toISOString() } : {}),
  ...(l.spec?.leaseTransitions !== undefined ? { leaseTransitions: l.spec.leaseTransitions } : {}),
  ...(l.metadata?.resourceVersion ? { resourceVersion: l.metadata.resourceVersion } : {}),
});

/** A MicroTime: the API server rejects anything but six fractional digits. */
const microTime = (iso: string) => new Date(iso).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

export class KubeLeaseStore implements LeaseStore {
  private readonly rest: KubeRest;
  readonly namespace: string;
  readonly name: string;

  constructor(kc: KubeConfig, namespace: string, name: string) {
    this.rest = new KubeRest(kc);
    this.namespace = namespace;
    this.name = name;
  }

  private body(r: LeaseRecord): V1Lease {
    return {
      metadata: {
        name: this.name,
        namespace: this.namespace,
        ...(r.resourceVersion ? { resourceVersion: r.resourceVersion } : {}),
      },
      spec: {
        holderIdentity: r.holderIdentity ?? "",
        ...(r.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: r.leaseDurationSeconds } : {}),
        ...(r.acquireTime ? { acquireTime: microTime(r.acquireTime) as unknown as Date } : {}),
        ...(r.renewTime ? { renewTime: microTime(r.renewTime) as unknown as Date } : {}),
        ...(r.leaseTransitions !== undefined ? { leaseTransitions: r.leaseTransitions } : {}),
      },
    };
  }

  private path(name?: string): string {
    return resourcePath({
      group: "coordination.k8s.io",
      version: "v1",
      plural: "leases",
      namespace: this.namespace,
      name,
    });
  }

  async get() {
    const l = await getOrUndefined(() => this.rest.get<V1Lease>(this.path(this.name)));
    return l ? toRecord(l) : undefined;
  }
  async create(r: LeaseRecord) {
    return toRecord(await kubeCall(() => this.rest.create<V1Lease>(this.path(), this.body(r))));
  }
  async update(r: LeaseRecord) {
    return toRecord(await kubeCall(() => this.rest.replace<V1Lease>(this.path(this.name), this.body(r))));
  }
}
