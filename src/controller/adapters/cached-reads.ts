// Reads the controller's watches already answer. The watches keep only metadata (setup.ts), so
// they cannot serve a pod's status or a ReplicaSet's selector themselves; but they know every
// object's current resourceVersion. This port keeps the last full object it read or wrote of
// each kind/namespace/name and serves it again, without a request, while the watch says the
// object is still at that resourceVersion: exactly the object a full informer cache would hold
// (client-go's listers), for the objects the controller touches only. Anything else (an object
// the watch has not seen, another resourceVersion, an object being deleted) is read live.
//
// Why that is enough where a handler decides on what it reads: a watch event updates the cache
// before it enqueues the migration it concerns, so a change a handler waits for (a pod becoming
// Ready, adopted, deleted) always brings a reconcile that sees it; a write's answer is the object
// at the resourceVersion it made, so a read after the handler's own write sees that write (or,
// when the watch is not there yet, reads live); and every write that depends on what was read is
// guarded (status writes and patches by resourceVersion, deletes by UID): a stale answer makes it
// fail with Conflict, which drops the kept object, and the retry reads live.
import type { V1ObjectMeta, V1Pod } from "@kubernetes/client-node";
import type { StatefulMigration } from "../../api/v1alpha1/index.ts";
import type { ClusterPort, DeleteOptions } from "../ports.ts";

export type WatchedKind = "StatefulMigration" | "Pod" | "Node" | "ReplicaSet" | "StatefulSet";

/** The resourceVersion the watch of `kind` last saw of an object (undefined: not seen, no watch). */
export type WatchedVersion = (kind: WatchedKind, namespace: string, name: string) => string | undefined;

/**
 * An object a watch keeps: whole enough for the handlers (`whole`: a StatefulMigration before its
 * first status write, setup.ts) or its metadata (`metadata`), or undefined.
 */
export type WatchedObject = (kind: WatchedKind, namespace: string, name: string) => unknown;

/** Counts of the reads served without a request and of those sent. */
export interface CachedReadStats {
  hits: number;
  misses: number;
}

/** What this port reads of an object (pods, nodes, workloads and migrations alike). */
interface Versioned {
  metadata?: { resourceVersion?: string; deletionTimestamp?: unknown };
}

/** The objects kept, shared by the layers of one port (see withInner). */
class Kept {
  readonly objects = new Map<string, Versioned>();
  readonly stats: CachedReadStats = { hits: 0, misses: 0 };
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
}

const keyOf = (kind: WatchedKind, namespace: string, name: string) => `${kind}/${namespace}/${name}`;

export class CachedReads implements ClusterPort {
  private readonly live: ClusterPort;
  private readonly watched: WatchedVersion;
  private readonly whole: WatchedObject | undefined;
  private readonly metadata: WatchedObject | undefined;
  private readonly synced: (() => boolean) | undefined;
  private readonly kept: Kept;

  /**
   * `max`: objects kept (default 256: the handful each migration in flight touches; a node
   * with many images weighs tens of kB). `whole`: objects the watch keeps whole (served as they
   * are). `metadata`: the objects the watches keep, for watchedMetadata(). `synced`: every watch
   * has listed (absent() says nothing before).
   */
  constructor(
    live: ClusterPort,
    watched: WatchedVersion,
    opts: { max?: number; whole?: WatchedObject; metadata?: WatchedObject; synced?: () => boolean } = {},
    kept?: Kept,
  ) {
    this.live = live;
    this.watched = watched;
    this.whole = opts.whole;
    this.metadata = opts.metadata;
    this.synced = opts.synced;
    this.kept = kept ?? new Kept(opts.max ?? 256);
  }

  get stats(): CachedReadStats {
    return this.kept.stats;
  }

  /** The same port over `wrap(live)` (tracing the requests it sends), sharing what it keeps. */
  withInner(wrap: (live: ClusterPort) => ClusterPort): CachedReads {
    return new CachedReads(
      wrap(this.live),
      this.watched,
      {
        ...(this.whole ? { whole: this.whole } : {}),
        ...(this.metadata ? { metadata: this.metadata } : {}),
        ...(this.synced ? { synced: this.synced } : {}),
      },
      this.kept,
    );
  }

  /** A read of this object would be answered without a request. */
  holds(kind: WatchedKind, namespace: string, name: string): boolean {
    return this.current(kind, namespace, name) !== undefined;
  }

  /**
   * The watches have listed, the one of `kind` shows no such object, and none was written here
   * and kept: a read would (most likely) find none. Only for a caller that finds out cheaply if
   * the watch lags behind a creation (creating the object answers AlreadyExists); never a reason
   * to fail.
   */
  absent(kind: WatchedKind, namespace: string, name: string): boolean {
    if (this.synced?.() !== true) return false;
    if (this.kept.objects.has(keyOf(kind, namespace, name))) return false;
    return this.watched(kind, namespace, name) === undefined;
  }

  /**
   * The object's metadata as the watch of `kind` shows it now (names, labels, owner references,
   * the deletion mark: kube/metadata.ts slimMetadata), without a request; undefined when the
   * watch shows no such object. For decisions on nothing else (a pod adopted by its workload).
   */
  watchedMetadata(kind: WatchedKind, namespace: string, name: string): V1ObjectMeta | undefined {
    return (this.metadata?.(kind, namespace, name) as { metadata?: V1ObjectMeta } | undefined)?.metadata;
  }

  private current(kind: WatchedKind, namespace: string, name: string): Versioned | undefined {
    // What this port kept comes first, even at another version than the watch shows: a watch may
    // lag behind an object read or written here, and a copy the watch keeps whole could then be
    // older than what the handlers have already seen.
    const obj =
      this.kept.objects.get(keyOf(kind, namespace, name)) ??
      (this.whole?.(kind, namespace, name) as Versioned | undefined);
    const rv = obj?.metadata?.resourceVersion;
    return rv !== undefined && this.watched(kind, namespace, name) === rv ? obj : undefined;
  }

  private keep(kind: WatchedKind, namespace: string, name: string, obj: Versioned | undefined): void {
    const key = keyOf(kind, namespace, name);
    this.kept.objects.delete(key);
    // An object being deleted changes by the second (finalizers, the kubelet): read live.
    if (!obj?.metadata?.resourceVersion || obj.metadata.deletionTimestamp) return;
    this.kept.objects.set(key, structuredClone(obj));
    // Oldest first out (a Map iterates in insertion order; a kept object is inserted anew).
    while (this.kept.objects.size > this.kept.max) {
      const oldest = this.kept.objects.keys().next().value;
      if (oldest === undefined) break;
      this.kept.objects.delete(oldest);
    }
  }

  private forget(kind: WatchedKind, namespace: string, name: string): void {
    this.kept.objects.delete(keyOf(kind, namespace, name));
  }

  private async read<T extends Versioned>(
    kind: WatchedKind,
    namespace: string,
    name: string,
    get: () => Promise<T | undefined>,
  ): Promise<T | undefined> {
    const held = this.current(kind, namespace, name);
    if (held) {
      this.kept.stats.hits++;
      return structuredClone(held) as T;
    }
    this.kept.stats.misses++;
    const obj = await get();
    this.keep(kind, namespace, name, obj);
    return obj;
  }

  /** A write: its answer is kept; a failure (Conflict above all) forgets the object. */
  private async write<T extends Versioned | undefined>(
    kind: WatchedKind,
    namespace: string,
    name: string,
    op: () => Promise<T>,
  ): Promise<T> {
    try {
      const obj = await op();
      this.keep(kind, namespace, name, obj);
      return obj;
    } catch (err) {
      this.forget(kind, namespace, name);
      throw err;
    }
  }

  getMigration(namespace: string, name: string): Promise<StatefulMigration | undefined> {
    return this.read("StatefulMigration", namespace, name, () => this.live.getMigration(namespace, name));
  }
  updateMigrationStatus(m: StatefulMigration): Promise<StatefulMigration> {
    const { namespace = "", name = "" } = m.metadata;
    return this.write("StatefulMigration", namespace, name, () => this.live.updateMigrationStatus(m));
  }
  addMigrationFinalizer(m: StatefulMigration, finalizer: string): Promise<StatefulMigration> {
    const { namespace = "", name = "" } = m.metadata;
    return this.write("StatefulMigration", namespace, name, () =>
      this.live.addMigrationFinalizer(m, finalizer),
    );
  }
  removeMigrationFinalizer(m: StatefulMigration, finalizer: string): Promise<StatefulMigration | undefined> {
    const { namespace = "", name = "" } = m.metadata;
    return this.write("StatefulMigration", namespace, name, () =>
      this.live.removeMigrationFinalizer(m, finalizer),
    );
  }

  getPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    return this.read("Pod", namespace, name, () => this.live.getPod(namespace, name));
  }
  createPod(namespace: string, pod: V1Pod): Promise<V1Pod> {
    return this.write("Pod", namespace, pod.metadata?.name ?? "", () => this.live.createPod(namespace, pod));
  }
  mergePatchPod(namespace: string, name: string, patch: object): Promise<V1Pod> {
    return this.write("Pod", namespace, name, () => this.live.mergePatchPod(namespace, name, patch));
  }
  jsonPatchPod(namespace: string, name: string, ops: object[]): Promise<V1Pod> {
    return this.write("Pod", namespace, name, () => this.live.jsonPatchPod(namespace, name, ops));
  }
  async deletePod(namespace: string, name: string, opts?: DeleteOptions): Promise<void> {
    this.forget("Pod", namespace, name);
    await this.live.deletePod(namespace, name, opts);
  }

  getNode(name: string) {
    return this.read("Node", "", name, () => this.live.getNode(name));
  }
  listNodes() {
    return this.live.listNodes();
  }
  listPodsOnNode(node: string) {
    return this.live.listPodsOnNode(node);
  }
  getReplicaSet(namespace: string, name: string) {
    return this.read("ReplicaSet", namespace, name, () => this.live.getReplicaSet(namespace, name));
  }
  getStatefulSet(namespace: string, name: string) {
    return this.read("StatefulSet", namespace, name, () => this.live.getStatefulSet(namespace, name));
  }
  getSecretKey(namespace: string, name: string, key: string) {
    return this.live.getSecretKey(namespace, name, key);
  }
}
