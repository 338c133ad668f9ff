// The narrow interfaces ("ports") the phase handlers work against. Real adapters live in
// ./adapters; unit tests use in-memory fakes. Every method is idempotent unless noted.
import type { V1Node, V1Pod, V1ReplicaSet, V1StatefulSet } from "@kubernetes/client-node";
import type { MessageQueueConfig, StatefulMigration, TransferMode } from "../api/v1alpha1/index.ts";
import type { ArchiveWindow } from "../transfer/job.ts";
import type { RuntimeName, RuntimeReport, WorkloadRef } from "../transfer/types.ts";

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  /** Precondition: only delete the object with this UID. */
  uid?: string;
}

/**
 * The Kubernetes API as the phases need it. Reads are current: live, or (adapters/cached-reads.ts)
 * the object last read or written while the watch shows it unchanged.
 */
export interface ClusterPort {
  getMigration(namespace: string, name: string): Promise<StatefulMigration | undefined>;
  /** PUT .../status with the object's resourceVersion; Conflict when the object changed. */
  updateMigrationStatus(m: StatefulMigration): Promise<StatefulMigration>;
  addMigrationFinalizer(m: StatefulMigration, finalizer: string): Promise<StatefulMigration>;
  removeMigrationFinalizer(m: StatefulMigration, finalizer: string): Promise<StatefulMigration | undefined>;

  getPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  createPod(namespace: string, pod: V1Pod): Promise<V1Pod>;
  /** Merge patch (RFC 7386). */
  mergePatchPod(namespace: string, name: string, patch: object): Promise<V1Pod>;
  /** JSON patch (RFC 6902), for guarded edits of lists such as ownerReferences and finalizers. */
  jsonPatchPod(namespace: string, name: string, ops: object[]): Promise<V1Pod>;
  deletePod(namespace: string, name: string, opts?: DeleteOptions): Promise<void>;

  getNode(name: string): Promise<V1Node | undefined>;
  listNodes(): Promise<V1Node[]>;
  /** The pods bound to a node (for the requests already placed there). */
  listPodsOnNode(node: string): Promise<V1Pod[]>;
  getReplicaSet(namespace: string, name: string): Promise<V1ReplicaSet | undefined>;
  getStatefulSet(namespace: string, name: string): Promise<V1StatefulSet | undefined>;
  getSecretKey(namespace: string, name: string, key: string): Promise<string | undefined>;
}

export type EventType = "Normal" | "Warning";
export interface EventRecorder {
  event(m: StatefulMigration, type: EventType, reason: string, message: string): void;
}

export interface CheckpointRequest {
  node: string;
  namespace: string;
  pod: string;
  container: string;
  /** Stable per migration and container: lets the agent answer "did this already happen?". */
  key: string;
  timeoutSeconds?: number;
  /** The route recorded with the intent (RoutingCheckpointer); the node's agent when absent. */
  via?: CheckpointRoute;
  /** The workload (incarnation) the pod belongs to: recorded by the agent with the checkpoint. */
  workload?: WorkloadRef;
}
/** How a checkpoint reaches the kubelet: the node's ms2m-agent, or the API server's node proxy. */
export type CheckpointRoute = "Agent" | "NodeProxy";
export interface CheckpointResult {
  path: string;
  digest?: string;
  bytes?: number;
}
export type CheckpointLookup =
  | { state: "done"; result: CheckpointResult }
  | { state: "absent" }
  /** Nobody can tell (kubelet reached through the API server proxy keeps no record). */
  | { state: "unknown" };

/** Takes checkpoints through the kubelet checkpoint API (via the node's agent or the API server proxy). */
export interface CheckpointPort {
  /** NOT idempotent: the phase records intent in status first and never calls it twice per key. */
  checkpoint(req: CheckpointRequest): Promise<CheckpointResult>;
  lookup(req: CheckpointRequest): Promise<CheckpointLookup>;
  /** The route checkpoint() would take on this node now (single-route ports: absent = Agent). */
  routeFor?(node: string): Promise<CheckpointRoute>;
}

export interface TransferRequest {
  mode: TransferMode;
  namespace: string;
  pod: string;
  container: string;
  sourceNode: string;
  targetNode: string;
  archivePath: string;
  digest?: string;
  /** Registry mode: repository:tag to push; Direct mode: name:tag to load on the target node. */
  image: string;
  key: string;
  /**
   * Registry mode with spec.encryption: the PEM keys read from its Secrets. The image is pushed
   * encrypted to `publicKey`; `privateKey` goes only to the target node's agent, which decrypts
   * and loads the image there.
   */
  encryption?: { publicKey: string; privateKey: string };
  /**
   * The workload (incarnation) checkpointed: the agents refuse a recorded checkpoint or image of
   * another UID, and annotate the images with it (lifecycle sweep).
   */
  workload?: WorkloadRef;
}
export interface TransferResult {
  /** Image reference the target pod's container uses. */
  image: string;
  digest?: string;
  bytes?: number;
}
export interface ArtifactRef {
  mode: TransferMode;
  sourceNode: string;
  /** The source pod and container the checkpoint is of (a cleanup Job checks the archive name against them). */
  namespace?: string;
  pod?: string;
  container?: string;
  targetNode?: string;
  archivePath?: string;
  /**
   * A checkpoint requested through the API server's node proxy without a recorded result (the
   * answer was lost; the kubelet keeps no record): the archive it may have written on sourceNode
   * is the one of namespace/pod/container whose kubelet timestamp lies in [from, to]; it is
   * complete by settleUntil. Removed by a cleanup Job pinned to sourceNode (agent or not).
   */
  archiveWindow?: Omit<ArchiveWindow, "container">;
  image?: string;
  /** Idempotency key (checkpointKey): the migration whose checkpoint records the agent releases. */
  key?: string;
  /**
   * The migration completed and its restored pod runs from the image loaded on targetNode: the
   * target's release drops its records but keeps that image (removing it would break a restart
   * of the container; the runtime's image GC owns it once unused). Otherwise (rollback, cancel)
   * the release removes what the target node loaded.
   */
  keepTargetImage?: boolean;
}
export interface CleanupReport {
  /** What could not be removed and is left (e.g. a registry that refuses deletes). */
  warnings: string[];
  /** Cleanup handed to a Job that finishes on its own (a Normal Event each). */
  started?: string[];
}
/** Moves checkpoint archives to where the target node's runtime can read them. Idempotent. */
export interface TransferPort {
  transfer(req: TransferRequest): Promise<TransferResult>;
  /**
   * Deletes archives, records and images a migration made; missing artifacts are not an error.
   * What is left on purpose or by refusal comes back as warnings (Events), not as a failure.
   */
  cleanup(artifacts: ArtifactRef[]): Promise<CleanupReport | void>;
}

/**
 * The images a restore stands on: CRI-O restores a checkpoint on top of the image the container
 * ran from (by image ID) and does not pull it. Idempotent; through the target node's agent.
 */
export interface BaseImagePort {
  /** Makes `image` (a digest reference) present on `node`; `present`: it already was. */
  ensure(node: string, migration: string, image: string): Promise<{ present: boolean; pullSeconds: number }>;
}

/** What a node's agent says about its container runtime, or why nothing could be asked. */
export type RuntimeProbe =
  | { state: "reported"; report: RuntimeReport }
  /** No agent to ask on that node (none runs there, none Ready where one is optional, too old). */
  | { state: "skipped"; why: string; expected: boolean };

/**
 * Preflight of a node's container runtime (checkpoint on the source, restore on the target),
 * through the node's ms2m-agent (`GET /v1/runtime`). Read-only; may cache briefly.
 */
export interface RuntimePort {
  /**
   * `runtime`: the runtime the node reports (Node.status.nodeInfo), so the agent reads its files.
   * `agentRequired`: the migration needs an agent on that node anyway, so one that is not Ready
   * (or cannot be reached) is a retriable error rather than a skipped check.
   */
  probe(node: string, opts: { runtime: RuntimeName; agentRequired: boolean }): Promise<RuntimeProbe>;
}

export interface ReplayRef {
  namespace: string;
  migration: string;
  migrationUid: string;
  config: MessageQueueConfig;
  /** Broker URL resolved from brokerUrl or the Secret; never logged. */
  brokerUrl: string;
}
export interface ReplayProgress {
  /**
   * What is left in the replay queue is small enough for the cutover's final, complete drain
   * (src/messaging/drain.ts decideCutover: a short backlog at the measured rate, or a few
   * messages). Not "empty": the cutover itself empties it with the source stopped.
   */
  readyForCutover: boolean;
  messagesReplayed: number;
  messagesRemaining: number;
}
export interface CutoverResult {
  messagesReplayed: number;
  messagesRemaining: number;
}
/** The replay protocol (messaging module). Every call is idempotent. */
export interface MessagingPort {
  /** Declares the replay queue and binds it like the primary queue; returns its name. */
  prepareReplay(ref: ReplayRef): Promise<{ replayQueue: string }>;
  /** The target's answer says which pod its process was restored from (absent: a fresh start). */
  startReplay(
    ref: ReplayRef,
    targetPod: string,
    replayQueue: string,
  ): Promise<{ restoredFrom?: { pod: string; uid?: string } }>;
  progress(ref: ReplayRef, replayQueue: string, targetPod: string): Promise<ReplayProgress>;
  /** Loss-free switch of consumption from the source to the target. */
  cutover(
    ref: ReplayRef,
    args: { sourcePod: string; targetPod: string; replayQueue: string; cutoff: boolean },
  ): Promise<CutoverResult>;
  /** Source consumes as before; the replay queue and anything else the migration made is gone. */
  rollback(ref: ReplayRef, args: { sourcePod: string; replayQueue?: string }): Promise<void>;
  /** Removes what is left after a completed migration (replay and status queues). */
  cleanup(ref: ReplayRef, replayQueue: string): Promise<void>;
}

export interface Clock {
  now(): number;
  /** Epoch ms with sub-millisecond precision, for spans (absent: now()). */
  precise?(): number;
}
export const systemClock: Clock = {
  now: () => Date.now(),
  precise: () => performance.timeOrigin + performance.now(),
};
