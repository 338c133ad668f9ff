// In-memory fakes of the controller's ports, with error injection and just enough API-server
// behaviour (resourceVersion preconditions, finalizers, graceful deletion) to exercise the phases.
import type { V1Node, V1Pod, V1ReplicaSet, V1StatefulSet } from "@kubernetes/client-node";
import pino from "pino";
import { Ms2mError } from "../../../src/common/errors.ts";
import type { StatefulMigration, StatefulMigrationSpecInput } from "../../../src/api/v1alpha1/index.ts";
import { StatefulMigrationSpec } from "../../../src/api/v1alpha1/index.ts";
import { defaultSettings, type PhaseDeps } from "../../../src/controller/context.ts";
import type { RuntimeName } from "../../../src/transfer/types.ts";
import type {
  ArtifactRef,
  CheckpointLookup,
  CheckpointPort,
  CheckpointRequest,
  CheckpointResult,
  ClusterPort,
  CutoverResult,
  DeleteOptions,
  EventRecorder,
  EventType,
  MessagingPort,
  ReplayProgress,
  ReplayRef,
  RuntimePort,
  RuntimeProbe,
  TransferPort,
  TransferRequest,
  TransferResult,
} from "../../../src/controller/ports.ts";

type Fault = Error | (() => Error);

/** Errors to throw from the next calls of a method, by method name. */
/** Shared by all fakes of a world: throws a "crash" at the n-th call of any of them. */
export const crash = { at: 0, count: 0 };

export class Faults {
  private readonly queued = new Map<string, Fault[]>();
  calls: string[] = [];

  inject(method: string, ...errors: Fault[]): void {
    this.queued.set(method, [...(this.queued.get(method) ?? []), ...errors]);
  }

  hit(method: string): void {
    this.calls.push(method);
    crash.count++;
    if (crash.at > 0 && crash.count === crash.at) throw new Error(`simulated crash at ${method}`);
    const list = this.queued.get(method);
    const next = list?.shift();
    if (next) throw typeof next === "function" ? next() : next;
  }

  count(method: string): number {
    return this.calls.filter((c) => c === method).length;
  }
}

export class FakeClock {
  t = Date.parse("2026-01-01T00:00:00.000Z");
  now = () => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

const clone = <T>(x: T): T => structuredClone(x);

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> =
    target && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class FakeCluster implements ClusterPort {
  readonly faults = new Faults();
  private rv = 100;
  private uidSeq = 0;
  readonly clock: FakeClock;
  migrations = new Map<string, StatefulMigration>();
  pods = new Map<string, V1Pod>();
  nodes = new Map<string, V1Node>();
  replicaSets = new Map<string, V1ReplicaSet>();
  statefulSets = new Map<string, V1StatefulSet>();
  secrets = new Map<string, Record<string, string>>();
  /** Called after every pod write: plays the workload controllers in tests. */
  onPodWrite?: (pod: V1Pod) => void;

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  nextRv(): string {
    return String(++this.rv);
  }
  nextUid(): string {
    return `00000000-0000-4000-8000-${String(++this.uidSeq).padStart(12, "0")}`;
  }

  addMigration(name: string, spec: StatefulMigrationSpecInput, namespace = "default"): StatefulMigration {
    const m: StatefulMigration = {
      apiVersion: "migration.ms2m.io/v1alpha1",
      kind: "StatefulMigration",
      metadata: { name, namespace, uid: this.nextUid(), generation: 1, resourceVersion: this.nextRv() },
      spec: StatefulMigrationSpec.parse(spec),
    };
    this.migrations.set(`${namespace}/${name}`, m);
    return clone(m);
  }

  migration(name: string, namespace = "default"): StatefulMigration {
    const m = this.migrations.get(`${namespace}/${name}`);
    if (!m) throw new Error(`no migration ${name}`);
    return m;
  }

  addPod(pod: V1Pod): V1Pod {
    const p = clone(pod);
    p.metadata = { namespace: "default", ...p.metadata, uid: this.nextUid(), resourceVersion: this.nextRv() };
    this.pods.set(`${p.metadata.namespace}/${p.metadata.name}`, p);
    return p;
  }

  pod(name: string, namespace = "default"): V1Pod | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }

  async getMigration(namespace: string, name: string) {
    this.faults.hit("getMigration");
    const m = this.migrations.get(`${namespace}/${name}`);
    return m ? clone(m) : undefined;
  }

  async updateMigrationStatus(m: StatefulMigration) {
    this.faults.hit("updateMigrationStatus");
    const key = `${m.metadata.namespace}/${m.metadata.name}`;
    const cur = this.migrations.get(key);
    if (!cur) throw new Ms2mError("NotFound", "migration not found");
    if (cur.metadata.resourceVersion !== m.metadata.resourceVersion)
      throw new Ms2mError("Conflict", "stale resourceVersion");
    const next = clone(cur);
    next.status = clone(m.status);
    next.metadata.resourceVersion = this.nextRv();
    this.migrations.set(key, next);
    this.faults.hit("updateMigrationStatus:after");
    return clone(next);
  }

  async addMigrationFinalizer(m: StatefulMigration, finalizer: string) {
    this.faults.hit("addMigrationFinalizer");
    const cur = this.migration(m.metadata.name ?? "", m.metadata.namespace);
    cur.metadata.finalizers = [...new Set([...(cur.metadata.finalizers ?? []), finalizer])];
    cur.metadata.resourceVersion = this.nextRv();
    return clone(cur);
  }

  async removeMigrationFinalizer(m: StatefulMigration, finalizer: string) {
    this.faults.hit("removeMigrationFinalizer");
    const key = `${m.metadata.namespace}/${m.metadata.name}`;
    const cur = this.migration(m.metadata.name ?? "", m.metadata.namespace);
    cur.metadata.finalizers = (cur.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    cur.metadata.resourceVersion = this.nextRv();
    if (cur.metadata.deletionTimestamp && cur.metadata.finalizers.length === 0) {
      this.migrations.delete(key);
      return undefined;
    }
    return clone(cur);
  }

  /** Deletes a migration the way the API server does when it has finalizers. */
  deleteMigration(name: string, namespace = "default"): void {
    const cur = this.migration(name, namespace);
    if ((cur.metadata.finalizers ?? []).length === 0) this.migrations.delete(`${namespace}/${name}`);
    else {
      cur.metadata.deletionTimestamp = new Date(this.clock.now()).toISOString();
      cur.metadata.resourceVersion = this.nextRv();
    }
  }

  async getPod(namespace: string, name: string) {
    this.faults.hit("getPod");
    const p = this.pods.get(`${namespace}/${name}`);
    return p ? clone(p) : undefined;
  }

  async createPod(namespace: string, pod: V1Pod) {
    this.faults.hit("createPod");
    const key = `${namespace}/${pod.metadata?.name}`;
    if (this.pods.has(key))
      throw new Ms2mError("AlreadyExists", `pods "${pod.metadata?.name}" already exists`);
    const p = clone(pod);
    p.metadata = { ...p.metadata, namespace, uid: this.nextUid(), resourceVersion: this.nextRv() };
    p.status = { phase: "Pending" };
    this.pods.set(key, p);
    this.onPodWrite?.(p);
    this.faults.hit("createPod:after");
    return clone(p);
  }

  async mergePatchPod(namespace: string, name: string, patch: object) {
    this.faults.hit("mergePatchPod");
    const key = `${namespace}/${name}`;
    const cur = this.pods.get(key);
    if (!cur) throw new Ms2mError("NotFound", `pods "${name}" not found`);
    const rv = (patch as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion;
    if (rv !== undefined && rv !== cur.metadata?.resourceVersion)
      throw new Ms2mError("Conflict", "the object has been modified");
    const next = mergePatch(cur, patch) as V1Pod;
    next.metadata!.resourceVersion = this.nextRv();
    this.pods.set(key, next);
    this.finishDeletion(key);
    if (this.pods.has(key)) this.onPodWrite?.(next);
    this.faults.hit("mergePatchPod:after");
    return clone(next);
  }

  async jsonPatchPod(): Promise<V1Pod> {
    throw new Error("not used by the phases");
  }

  async deletePod(namespace: string, name: string, opts: DeleteOptions = {}) {
    this.faults.hit("deletePod");
    const key = `${namespace}/${name}`;
    const cur = this.pods.get(key);
    if (!cur) throw new Ms2mError("NotFound", `pods "${name}" not found`);
    if (opts.uid && cur.metadata?.uid !== opts.uid)
      throw new Ms2mError("Conflict", "uid precondition failed");
    cur.metadata!.deletionTimestamp ??= new Date(this.clock.now()) as unknown as Date;
    const grace = opts.gracePeriodSeconds ?? 30;
    const prev = cur.metadata!.deletionGracePeriodSeconds;
    cur.metadata!.deletionGracePeriodSeconds = prev === undefined ? grace : Math.min(prev, grace);
    cur.metadata!.resourceVersion = this.nextRv();
    this.finishDeletion(key);
    this.faults.hit("deletePod:after");
  }

  /** The kubelet has stopped the pod's containers and confirms the deletion. */
  kubeletConfirm(name: string, namespace = "default"): void {
    const key = `${namespace}/${name}`;
    const cur = this.pods.get(key);
    if (!cur?.metadata?.deletionTimestamp) return;
    cur.metadata.deletionGracePeriodSeconds = 0;
    cur.status = { ...cur.status, phase: "Failed" };
    cur.metadata.resourceVersion = this.nextRv();
    this.finishDeletion(key);
  }

  private finishDeletion(key: string): void {
    const cur = this.pods.get(key);
    if (cur?.metadata?.deletionTimestamp && cur.metadata.deletionGracePeriodSeconds === 0) {
      if ((cur.metadata.finalizers ?? []).length === 0) this.pods.delete(key);
    }
  }

  /** The kubelet reports the pod running and ready. */
  markReady(name: string, namespace = "default"): void {
    const p = this.pods.get(`${namespace}/${name}`);
    if (!p) throw new Error(`no pod ${name}`);
    p.status = {
      phase: "Running",
      conditions: [{ type: "Ready", status: "True" }],
      containerStatuses: (p.spec?.containers ?? []).map((c) => ({
        name: c.name,
        image: c.image ?? "",
        imageID: "",
        ready: true,
        restartCount: 0,
        state: { running: {} },
      })),
    };
    p.metadata!.resourceVersion = this.nextRv();
  }

  async getNode(name: string) {
    this.faults.hit("getNode");
    const n = this.nodes.get(name);
    return n ? clone(n) : undefined;
  }
  async listNodes() {
    this.faults.hit("listNodes");
    return [...this.nodes.values()].map(clone);
  }
  async listPodsOnNode(node: string) {
    this.faults.hit("listPodsOnNode");
    return [...this.pods.values()].filter((p) => p.spec?.nodeName === node).map(clone);
  }
  async getReplicaSet(namespace: string, name: string) {
    this.faults.hit("getReplicaSet");
    const x = this.replicaSets.get(`${namespace}/${name}`);
    return x ? clone(x) : undefined;
  }
  async getStatefulSet(namespace: string, name: string) {
    this.faults.hit("getStatefulSet");
    const x = this.statefulSets.get(`${namespace}/${name}`);
    return x ? clone(x) : undefined;
  }
  async getSecretKey(namespace: string, name: string, key: string) {
    this.faults.hit("getSecretKey");
    return this.secrets.get(`${namespace}/${name}`)?.[key];
  }
}

export class FakeCheckpointer implements CheckpointPort {
  readonly faults = new Faults();
  /** What the node's agent remembers, by key. */
  done = new Map<string, CheckpointResult>();
  requests: CheckpointRequest[] = [];
  lookupAnswer?: CheckpointLookup["state"];
  routeFor?: CheckpointPort["routeFor"];

  async checkpoint(req: CheckpointRequest) {
    this.faults.hit("checkpoint");
    this.requests.push(req);
    const result = {
      path: `/var/lib/kubelet/checkpoints/checkpoint-${req.pod}_${req.namespace}-${req.container}-2026-01-01T00:00:00Z.tar`,
      digest: "sha256:" + "a".repeat(64),
      bytes: 1024,
    };
    this.done.set(req.key, result);
    this.faults.hit("checkpoint:after");
    return result;
  }

  async lookup(req: CheckpointRequest): Promise<CheckpointLookup> {
    this.faults.hit("lookup");
    if (this.lookupAnswer === "unknown") return { state: "unknown" };
    const r = this.done.get(req.key);
    return r ? { state: "done", result: r } : { state: "absent" };
  }
}

export class FakeTransfer implements TransferPort {
  readonly faults = new Faults();
  requests: TransferRequest[] = [];
  cleaned: ArtifactRef[] = [];

  async transfer(req: TransferRequest): Promise<TransferResult> {
    this.faults.hit("transfer");
    this.requests.push(req);
    return { image: req.image, bytes: 1024 };
  }
  async cleanup(artifacts: ArtifactRef[]) {
    this.faults.hit("cleanup");
    this.cleaned.push(...artifacts);
  }
}

/**
 * The nodes' agents answering GET /v1/runtime: by default CRI-O with checkpoint and restore on,
 * per node overridable with a report or a skip.
 */
export class FakeRuntime implements RuntimePort {
  readonly faults = new Faults();
  probes: { node: string; runtime: string; agentRequired: boolean }[] = [];
  answers = new Map<string, RuntimeProbe>();

  async probe(node: string, opts: { runtime: RuntimeName; agentRequired: boolean }): Promise<RuntimeProbe> {
    this.probes.push({ node, ...opts });
    this.faults.hit("probe");
    return (
      this.answers.get(node) ?? {
        state: "reported",
        report: {
          runtime: "cri-o",
          checkpoint: true,
          restore: true,
          source: "/etc/crio/crio.conf.d/10-crio.conf",
          detail: "checkpoint and restore on",
          settings: {
            enable_criu_support: {
              value: true,
              file: "/etc/crio/crio.conf.d/10-crio.conf",
              table: "[crio.runtime]",
            },
            container_level_enabled: {
              value: "checkpoint_restore",
              file: "/etc/crio/crio.conf.d/10-crio.conf",
              table: "[crio.checkpoint_restore]",
            },
          },
        },
      }
    );
  }
}

export class FakeMessaging implements MessagingPort {
  readonly faults = new Faults();
  queues = new Set<string>();
  started: string[] = [];
  cutovers: { sourcePod: string; targetPod: string; cutoff: boolean }[] = [];
  rollbacks: string[] = [];
  drained = true;
  replayed = 0;
  remaining = 5;

  async prepareReplay(ref: ReplayRef) {
    this.faults.hit("prepareReplay");
    const q = `ms2m.replay.${ref.migrationUid}`;
    this.queues.add(q);
    return { replayQueue: q };
  }
  /**
   * What the target's SDK answers: the pod its process was restored from. Default (set by
   * makeWorld): the migration's source, as a real restore reports; undefined: a cold start.
   */
  restoredFrom: (ref: ReplayRef) => { pod: string; uid?: string } | undefined = () => undefined;
  async startReplay(ref: ReplayRef, targetPod: string) {
    this.faults.hit("startReplay");
    this.started.push(targetPod);
    this.faults.hit("startReplay:after");
    const from = this.restoredFrom(ref);
    return from ? { restoredFrom: from } : {};
  }
  async progress(): Promise<ReplayProgress> {
    this.faults.hit("progress");
    return {
      readyForCutover: this.drained,
      messagesReplayed: this.replayed,
      messagesRemaining: this.drained ? 0 : this.remaining,
    };
  }
  async cutover(
    _ref: ReplayRef,
    args: { sourcePod: string; targetPod: string; replayQueue: string; cutoff: boolean },
  ): Promise<CutoverResult> {
    this.faults.hit("cutover");
    this.cutovers.push(args);
    this.faults.hit("cutover:after");
    return { messagesReplayed: this.replayed, messagesRemaining: 0 };
  }
  async rollback(_ref: ReplayRef, args: { sourcePod: string; replayQueue?: string }) {
    this.faults.hit("rollback");
    if (args.replayQueue) this.queues.delete(args.replayQueue);
    this.rollbacks.push(args.sourcePod);
  }
  async cleanup(_ref: ReplayRef, replayQueue: string) {
    this.faults.hit("cleanup");
    this.queues.delete(replayQueue);
  }
}

export class FakeEvents implements EventRecorder {
  events: { type: EventType; reason: string; message: string }[] = [];
  event(_m: StatefulMigration, type: EventType, reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }
  reasons(): string[] {
    return this.events.map((e) => e.reason);
  }
}

export interface World {
  clock: FakeClock;
  cluster: FakeCluster;
  checkpointer: FakeCheckpointer;
  transfer: FakeTransfer;
  runtime: FakeRuntime;
  messaging: FakeMessaging;
  events: FakeEvents;
  deps: PhaseDeps;
}

export function makeWorld(): World {
  const clock = new FakeClock();
  const cluster = new FakeCluster(clock);
  const checkpointer = new FakeCheckpointer();
  const transfer = new FakeTransfer();
  const runtime = new FakeRuntime();
  const messaging = new FakeMessaging();
  messaging.restoredFrom = (ref) => {
    const m = cluster.migrations.get(`${ref.namespace}/${ref.migration}`);
    return m ? { pod: m.spec.sourcePod, uid: m.status?.sourcePodUID } : undefined;
  };
  const events = new FakeEvents();
  const deps: PhaseDeps = {
    cluster,
    checkpointer,
    transfer,
    runtime,
    messaging,
    events,
    clock,
    log: pino({ level: "silent" }),
    settings: structuredClone(defaultSettings),
    sent: new Set(),
    brokerUrls: new Map(),
  };
  return { clock, cluster, checkpointer, transfer, runtime, messaging, events, deps };
}

export function readyNode(name: string, extra: Partial<V1Node> = {}): V1Node {
  return {
    metadata: { name, labels: { "kubernetes.io/hostname": name } },
    status: { conditions: [{ type: "Ready", status: "True" }] },
    ...extra,
  };
}
