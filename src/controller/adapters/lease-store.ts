// LeaseStore over coordination.k8s.io/v1 Leases.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import { getOrUndefined, kubeCall } from "../../kube/errors.ts";
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

export class KubeLeaseStore implements LeaseStore {
  private readonly api: CoordinationV1Api;
  readonly namespace: string;
  readonly name: string;

  constructor(kc: KubeConfig, namespace: string, name: string) {
    this.api = kc.makeApiClient(CoordinationV1Api);
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
        // MicroTime: the API server rejects anything but six fractional digits.
        ...(r.acquireTime ? { acquireTime: new V1MicroTime(r.acquireTime) } : {}),
        ...(r.renewTime ? { renewTime: new V1MicroTime(r.renewTime) } : {}),
        ...(r.leaseTransitions !== undefined ? { leaseTransitions: r.leaseTransitions } : {}),
      },
    };
  }

  async get() {
    const l = await getOrUndefined(() =>
      this.api.readNamespacedLease({ name: this.name, namespace: this.namespace }),
    );
    return l ? toRecord(l) : undefined;
  }
  async create(r: LeaseRecord) {
    return toRecord(
      await kubeCall(() => this.api.createNamespacedLease({ namespace: this.namespace, body: this.body(r) })),
    );
  }
  async update(r: LeaseRecord) {
    return toRecord(
      await kubeCall(() =>
        this.api.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body: this.body(r) }),
      ),
    );
  }
}
