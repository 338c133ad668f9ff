// Wires informers, the work queue, the workers and the reconciler. Watches decide what to
// reconcile: a change to a migration, to a pod it moves or creates, to the nodes it uses or to
// the workload that owns its pod enqueues that migration at once; a periodic resync re-adds
// every migration as a safety net.
import type {
  KubeConfig,
  KubernetesObject,
  V1Job,
  V1Node,
  V1Pod,
  V1ReplicaSet,
  V1StatefulSet,
  V1Deployment,
} from "@kubernetes/client-node";
import { AppsV1Api, BatchV1Api, CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { group, plural, version, type StatefulMigration } from "../api/v1alpha1/index.ts";
import { describeError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import type { ControllerMetrics } from "../common/metrics.ts";
import { CONTROLLER_NAME } from "../controller/names.ts";
import { LABEL_TRANSFER_MIGRATION_UID } from "../controller/transfer-job.ts";
import { RetryAfter, type Reconciler } from "../controller/reconciler.ts";
import { ResilientInformer } from "./informer.ts";
import { defaultControllerRateLimiter } from "./ratelimiter.ts";
import { WorkQueue } from "./workqueue.ts";

export interface ManagerOptions {
  kc: KubeConfig;
  reconciler: Reconciler;
  log: Logger;
  metrics: ControllerMetrics;
  workers: number;
  resyncMs: number;
  /** Watch the transfer Jobs in this namespace (the controller's own; unset: no Job watch). */
  jobNamespace?: string;
}

const key = (ns: string | undefined, name: string | undefined) => `${ns ?? ""}/${name ?? ""}`;
const terminal = (m: StatefulMigration) => m.status?.phase === "Completed" || m.status?.phase === "Failed";

export class Manager {
  readonly queue: WorkQueue;
  private readonly opts: ManagerOptions;
  private readonly informers: ResilientInformer<KubernetesObject>[] = [];
  private migrations!: ResilientInformer<KubernetesObject>;
  private workersDone: Promise<void>[] = [];
  private resyncTimer?: NodeJS.Timeout;
  private informersStarted = false;

  constructor(opts: ManagerOptions) {
    this.opts = opts;
    this.queue = new WorkQueue({
      rateLimiter: defaultControllerRateLimiter(),
      metrics: opts.metrics.workqueue,
      name: CONTROLLER_NAME,
    });
  }

  /** Every informer has listed (false before startInformers() has finished). */
  get synced(): boolean {
    return this.informersStarted && this.informers.every((i) => i.synced);
  }

  /** Migrations (not yet finished) that a change to `match` concerns. */
  private enqueueWhere(ns: string | undefined, match: (m: StatefulMigration) => boolean): void {
    for (const m of this.migrationList()) {
      if ((ns === undefined || m.metadata.namespace === ns) && !terminal(m) && match(m)) {
        this.queue.add(key(m.metadata.namespace, m.metadata.name));
      }
    }
  }

  private migrationList(): readonly StatefulMigration[] {
    return this.migrations.list() as unknown as readonly StatefulMigration[];
  }

  async startInformers(): Promise<void> {
    const { kc, log } = this.opts;
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    this.migrations = new ResilientInformer<KubernetesObject>({
      kc,
      log,
      path: `/apis/${group}/${version}/${plural}`,
      list: () => custom.listClusterCustomObject({ group, version, plural }) as never,
      onChange: (m) => this.queue.add(key(m.metadata?.namespace, m.metadata?.name)),
    });
    const pods = new ResilientInformer<V1Pod>({
      kc,
      log,
      path: "/api/v1/pods",
      list: () => core.listPodForAllNamespaces(),
      onChange: (p) => {
        // A transfer Job's pod: its termination message is the result, before the Job says so.
        const jobOf = this.opts.jobNamespace && p.metadata?.labels?.[LABEL_TRANSFER_MIGRATION_UID];
        if (jobOf && p.metadata?.namespace === this.opts.jobNamespace)
          return this.enqueueWhere(undefined, (m) => m.metadata.uid === jobOf);
        this.enqueueWhere(
          p.metadata?.namespace,
          (m) => m.spec.sourcePod === p.metadata?.name || m.status?.targetPod === p.metadata?.name,
        );
      },
    });
    const nodes = new ResilientInformer<V1Node>({
      kc,
      log,
      path: "/api/v1/nodes",
      list: () => core.listNode(),
      onChange: (n, type) => {
        // Status heartbeats change nodes constantly; only readiness matters here.
        if (type === "update")
          return this.enqueueWhere(
            undefined,
            (m) => m.status?.targetNode === n.metadata?.name && m.status?.phase === "Restoring",
          );
        this.enqueueWhere(
          undefined,
          (m) => m.status?.targetNode === n.metadata?.name || m.status?.sourceNode === n.metadata?.name,
        );
      },
    });
    const owners = (kind: string) => (o: KubernetesObject) =>
      this.enqueueWhere(
        o.metadata?.namespace,
        (m) => m.status?.owner?.kind === kind && m.status.owner.name === o.metadata?.name,
      );
    const rs = new ResilientInformer<V1ReplicaSet>({
      kc,
      log,
      path: "/apis/apps/v1/replicasets",
      list: () => apps.listReplicaSetForAllNamespaces(),
      onChange: owners("ReplicaSet"),
    });
    const sts = new ResilientInformer<V1StatefulSet>({
      kc,
      log,
      path: "/apis/apps/v1/statefulsets",
      list: () => apps.listStatefulSetForAllNamespaces(),
      onChange: owners("StatefulSet"),
    });
    // A Deployment above the source's ReplicaSet (a rollout or scale during a migration).
    const deployments = new ResilientInformer<V1Deployment>({
      kc,
      log,
      path: "/apis/apps/v1/deployments",
      list: () => apps.listDeploymentForAllNamespaces(),
      onChange: (d) =>
        this.enqueueWhere(
          d.metadata?.namespace,
          (m) =>
            m.status?.owner?.workloadKind === "Deployment" &&
            m.status.owner.workloadName === d.metadata?.name,
        ),
    });
    // Transfer Jobs (adapters/transfer-job.ts) carry their migration's UID.
    const jobNs = this.opts.jobNamespace;
    const batch = kc.makeApiClient(BatchV1Api);
    const jobs = jobNs
      ? new ResilientInformer<V1Job>({
          kc,
          log,
          path: `/apis/batch/v1/namespaces/${jobNs}/jobs`,
          list: () => batch.listNamespacedJob({ namespace: jobNs }),
          onChange: (j) => {
            const uid = j.metadata?.labels?.[LABEL_TRANSFER_MIGRATION_UID];
            if (uid) this.enqueueWhere(undefined, (m) => m.metadata.uid === uid);
          },
        })
      : undefined;
    // The migration cache must exist before the others route events through it.
    await this.migrations.start();
    this.informers.push(this.migrations);
    for (const inf of [
      pods,
      nodes,
      rs,
      sts,
      deployments,
      ...(jobs ? [jobs] : []),
    ] as unknown as ResilientInformer<KubernetesObject>[]) {
      this.informers.push(inf);
      await inf.start();
    }
    this.informersStarted = true;
  }

  /** Starts the workers (call when leading). */
  startWorkers(): void {
    this.resyncTimer = setInterval(() => {
      for (const m of this.migrationList()) this.queue.add(key(m.metadata.namespace, m.metadata.name));
      this.opts.metrics.inFlight.set(this.migrationList().filter((m) => !terminal(m)).length);
    }, this.opts.resyncMs);
    this.resyncTimer.unref();
    for (let i = 0; i < this.opts.workers; i++) this.workersDone.push(this.worker());
  }

  private async worker(): Promise<void> {
    const { reconciler, metrics, log } = this.opts;
    for (;;) {
      const item = await this.queue.get();
      if (item === undefined) return;
      const [ns, name] = item.split("/") as [string, string];
      const started = performance.now();
      try {
        const result = await reconciler.reconcile(ns, name);
        this.queue.forget(item);
        if (result.requeueAfterMs !== undefined) {
          this.queue.addAfter(item, result.requeueAfterMs);
          metrics.reconcileTotal.inc({ controller: CONTROLLER_NAME, result: "requeue_after" });
        } else metrics.reconcileTotal.inc({ controller: CONTROLLER_NAME, result: "success" });
      } catch (err) {
        metrics.reconcileTotal.inc({ controller: CONTROLLER_NAME, result: "error" });
        metrics.reconcileErrors.inc({ controller: CONTROLLER_NAME });
        log.info({ migration: item, err: describeError(err) }, "reconcile failed, retrying");
        this.queue.addRateLimited(item);
        // Wake up at the phase deadline at the latest, whatever the backoff says.
        if (err instanceof RetryAfter && Number.isFinite(err.deadlineMs))
          this.queue.addAfter(item, Math.max(0, err.deadlineMs));
      } finally {
        metrics.reconcileTime.observe({ controller: CONTROLLER_NAME }, (performance.now() - started) / 1000);
        this.queue.done(item);
      }
    }
  }

  /** Stops taking work, waits for reconciles in flight, stops the watches. */
  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.queue.shutDownWithDrain();
    await Promise.all(this.workersDone);
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}
