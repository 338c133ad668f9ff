// The StatefulMigration controller's wiring into the generic engine: what it watches and which
// migrations a change concerns. A change to a migration, to a pod it moves or creates, to the
// nodes it uses or to the workload that owns its pod enqueues that migration at once; the
// engine's resync re-adds every migration as a safety net.
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { KubeRest, resourcePath } from "../kube/rest.ts";
import { group, plural, version, type StatefulMigration } from "../api/v1alpha1/index.ts";
import type { Logger } from "../common/logger.ts";
import { Controller } from "../engine/controller.ts";
import type { Reconciler, Request } from "../engine/reconciler.ts";
import { listMetadata, PARTIAL_OBJECT_METADATA, slimMetadata } from "../kube/metadata.ts";
import type { AgentClient } from "../transfer/index.ts";
import type { WatchedKind, WatchedObject, WatchedVersion } from "./adapters/cached-reads.ts";
import { kubeSweepPorts } from "./lifecycle/kube.ts";
import { CheckpointSweeper } from "./lifecycle/sweep.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { CONTROLLER_NAME, KEY_MIGRATION_UID } from "./names.ts";

export interface SetupOptions {
  kc: KubeConfig;
  reconciler: Reconciler;
  log: Logger;
  metrics: ControllerMetrics;
  workers: number;
  resyncMs: number;
  /** Watch the transfer Jobs in this namespace (the controller's own; unset: no Job watch). */
  jobNamespace?: string;
}

// The API types come from the zod schema (timestamps as strings), not from client-node's.
const migrations = (objects: readonly KubernetesObject[]) =>
  objects as unknown as readonly StatefulMigration[];
const terminal = (m: StatefulMigration) => m.status?.phase === "Completed" || m.status?.phase === "Failed";

/**
 * A migration as the cache keeps it: what the map functions and the resync read (metadata, spec,
 * phase, nodes, pods, owner). The reconciler reads every migration live (or as it last wrote it,
 * while the watch shows that version: adapters/cached-reads.ts), so the cache drops managedFields,
 * annotations and the bulky status fields nothing here reads.
 */
export function cachedMigration(obj: KubernetesObject): KubernetesObject {
  const m = obj as StatefulMigration;
  const {
    managedFields: _mf,
    annotations: _an,
    ...metadata
  } = m.metadata as StatefulMigration["metadata"] & {
    managedFields?: unknown;
  };
  if (!m.status) return { ...m, metadata } as KubernetesObject;
  const {
    conditions: _c,
    containers: _ct,
    phaseTimings: _pt,
    sourcePodTemplate: _spt,
    targetNodeReason: _tnr,
    ...status
  } = m.status;
  return { ...m, metadata, status } as KubernetesObject;
}

/** The watches the controller runs, by the kind of object they watch. */
export const WATCH_PATHS: Record<WatchedKind, string> = {
  StatefulMigration: `/apis/${group}/${version}/${plural}`,
  Pod: "/api/v1/pods",
  Node: "/api/v1/nodes",
  ReplicaSet: "/apis/apps/v1/replicasets",
  StatefulSet: "/apis/apps/v1/statefulsets",
};

/**
 * The objects the controller's watches keep (metadata only, but for migrations), for decisions
 * that need no more (adapters/cached-reads.ts watchedMetadata).
 */
export function watchedObjects(controller: () => Controller | undefined): WatchedObject {
  return (kind, namespace, name) => controller()?.cached(WATCH_PATHS[kind], namespace, name);
}

/**
 * The resourceVersions the controller's watches last saw (adapters/cached-reads.ts). `controller`
 * is asked at each read, so it may be set after the reconciler is made (undefined: none seen).
 */
export function watchedVersions(controller: () => Controller | undefined): WatchedVersion {
  const watched = watchedObjects(controller);
  return (kind, namespace, name) =>
    (watched(kind, namespace, name) as KubernetesObject | undefined)?.metadata?.resourceVersion;
}

/**
 * A StatefulMigration as its watch keeps it, while that is the whole object the handlers read:
 * before its first status write (cachedMigration drops only managedFields and annotations then,
 * which no handler reads; a status write ignores metadata). Its first reconcile reads no more.
 */
export function wholeFromWatch(controller: () => Controller | undefined): WatchedObject {
  return (kind, namespace, name) => {
    if (kind !== "StatefulMigration") return undefined;
    const m = controller()?.cached(WATCH_PATHS.StatefulMigration, namespace, name) as
      StatefulMigration | undefined;
    return m && m.status === undefined ? m : undefined;
  };
}

export function setupStatefulMigrationController(opts: SetupOptions): Controller {
  const { kc } = opts;
  const rest = new KubeRest(kc);
  // The other watches' map functions read only names, namespaces and labels (the hand-over also
  // owners and the deletion mark): they list and watch metadata only (PartialObjectMetadata) and
  // keep just those fields. Every change of the object
  // still arrives as an event (and its resourceVersion: the reconciler reads live only what
  // changed since it last read or wrote it, adapters/cached-reads.ts).
  const metadataOnly = (path: string) => ({
    path,
    list: () => listMetadata(kc, path),
    accept: PARTIAL_OBJECT_METADATA,
    transform: slimMetadata,
  });

  const c = new Controller({
    name: CONTROLLER_NAME,
    kc,
    reconciler: opts.reconciler,
    log: opts.log,
    metrics: opts.metrics,
    workers: opts.workers,
    resyncMs: opts.resyncMs,
    keyField: "migration",
    onResync: (all) => opts.metrics.inFlight.set(migrations(all).filter((m) => !terminal(m)).length),
  });

  /** Unfinished migrations (in `ns`, if given) that a change to `match` concerns. */
  const where = (ns: string | undefined, match: (m: StatefulMigration) => boolean): Request[] =>
    migrations(c.list())
      .filter((m) => (ns === undefined || m.metadata?.namespace === ns) && !terminal(m) && match(m))
      .map((m) => ({ namespace: m.metadata?.namespace ?? "", name: m.metadata?.name ?? "" }));
  const ownedBy = (kind: string) => (o: KubernetesObject) =>
    where(
      o.metadata?.namespace,
      (m) => m.status?.owner?.kind === kind && m.status.owner.name === o.metadata?.name,
    );

  c.for({
    path: WATCH_PATHS.StatefulMigration,
    list: () => rest.list(resourcePath({ group, version, plural })) as never,
    transform: cachedMigration,
  });

  c.watches(metadataOnly(WATCH_PATHS.Pod), (p) => {
    // A transfer Job's pod: its termination message is the result, before the Job says so.
    const jobOf = opts.jobNamespace && p.metadata?.labels?.[KEY_MIGRATION_UID];
    if (jobOf && p.metadata?.namespace === opts.jobNamespace)
      return where(undefined, (m) => m.metadata.uid === jobOf);
    return where(
      p.metadata?.namespace,
      (m) => m.spec.sourcePod === p.metadata?.name || m.status?.targetPod === p.metadata?.name,
    );
  });

  c.watches(metadataOnly(WATCH_PATHS.Node), (n, type) =>
    // Status heartbeats change nodes constantly; on updates only a restore waiting for its node cares.
    type === "update"
      ? where(undefined, (m) => m.status?.targetNode === n.metadata?.name && m.status?.phase === "Restoring")
      : where(
          undefined,
          (m) => m.status?.targetNode === n.metadata?.name || m.status?.sourceNode === n.metadata?.name,
        ),
  );

  c.watches(metadataOnly(WATCH_PATHS.ReplicaSet), ownedBy("ReplicaSet"));
  c.watches(metadataOnly(WATCH_PATHS.StatefulSet), ownedBy("StatefulSet"));
  // A Deployment above the source's ReplicaSet (a rollout or scale during a migration).
  c.watches(metadataOnly("/apis/apps/v1/deployments"), (d) =>
    where(
      d.metadata?.namespace,
      (m) =>
        m.status?.owner?.workloadKind === "Deployment" && m.status.owner.workloadName === d.metadata?.name,
    ),
  );

  // Transfer and cleanup Jobs (adapters/transfer-job) carry their migration's UID.
  const jobNs = opts.jobNamespace;
  if (jobNs) {
    c.watches(metadataOnly(`/apis/batch/v1/namespaces/${jobNs}/jobs`), (j) => {
      const uid = j.metadata?.labels?.[KEY_MIGRATION_UID];
      return uid ? where(undefined, (m) => m.metadata.uid === uid) : [];
    });
  }
  return c;
}

export interface SweeperOptions {
  kc: KubeConfig;
  client: AgentClient;
  log: Logger;
  /** CHECKPOINT_TTL_SECONDS; 0: no sweep. */
  ttlSeconds: number;
  intervalSeconds: number;
  agentNamespace: string;
  agentLabelSelector: string;
  agentPort: number;
}

/**
 * The checkpoint lifecycle sweep (lifecycle/sweep.ts), a Runnable the leader starts beside the
 * workers: undefined when switched off.
 */
export function checkpointSweeper(opts: SweeperOptions): CheckpointSweeper | undefined {
  if (opts.ttlSeconds <= 0) return undefined;
  return new CheckpointSweeper({
    ports: kubeSweepPorts(opts.kc, opts.client, opts),
    settings: { ttlMs: opts.ttlSeconds * 1000, intervalMs: opts.intervalSeconds * 1000 },
    log: opts.log,
  });
}
