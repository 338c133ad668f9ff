// A controller as controller-runtime builds one: the primary resource (`for`) enqueues its own
// key, other watched resources (`watches`) enqueue the keys a map function returns, a periodic
// resync re-adds every primary object, and workers hand keys to a Reconciler one at a time per
// key (the work queue's guarantee). Knows nothing of any particular resource.
import { randomBytes } from "node:crypto";
import type { KubeConfig, KubernetesListObject, KubernetesObject } from "@kubernetes/client-node";
import { describeError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import { ResilientInformer } from "./informer.ts";
import type { EngineMetrics } from "./metrics.ts";
import { defaultControllerRateLimiter } from "./ratelimiter.ts";
import {
  parseRequestKey,
  requestKey,
  RetryAfter,
  TerminalError,
  type Reconciler,
  type Request,
} from "./reconciler.ts";
import { WorkQueue } from "./workqueue.ts";

/** A resource to list and watch. */
export interface Source<T extends KubernetesObject> {
  /** Watch path, e.g. `/api/v1/pods` or `/apis/batch/v1/namespaces/x/jobs`. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  /**
   * Accept header of the watch, e.g. metadata only (`list` must return the same representation).
   * Only the map function and the cache see the objects, so a watch whose map reads metadata
   * needs no more.
   */
  accept?: string;
  /** Reduces every listed and watched object before the cache and the map function see it. */
  transform?: (obj: T) => T;
}

export type EventType = "add" | "update" | "delete";
/** Which primary objects a change to a watched object concerns. */
export type MapFunc<T> = (obj: T, type: EventType) => Request[];

export interface ControllerOptions {
  /** The controller's name: metrics label, work queue name, log field. */
  name: string;
  kc: KubeConfig;
  reconciler: Reconciler;
  log: Logger;
  metrics: EngineMetrics;
  workers: number;
  resyncMs: number;
  /** Log field that carries the request's key in each reconcile's logger (default `key`). */
  keyField?: string;
  /** Called at every resync with the primary objects (e.g. to export a gauge). */
  onResync?: (objects: readonly KubernetesObject[]) => void;
}

interface Watch {
  source: Source<KubernetesObject>;
  map: MapFunc<KubernetesObject>;
}

export class Controller<P extends KubernetesObject = KubernetesObject> {
  readonly queue: WorkQueue;
  private readonly opts: ControllerOptions;
  private primarySource?: Source<P>;
  private readonly watchList: Watch[] = [];
  private primary?: ResilientInformer<P>;
  private readonly informers: ResilientInformer<KubernetesObject>[] = [];
  /** The informers by their watch path. */
  private readonly byPath = new Map<string, ResilientInformer<KubernetesObject>>();
  private readonly workersDone: Promise<void>[] = [];
  private resyncTimer?: NodeJS.Timeout;
  private informersStarted = false;

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    this.queue = new WorkQueue({
      rateLimiter: defaultControllerRateLimiter(),
      metrics: opts.metrics.workqueue,
      name: opts.name,
    });
  }

  /** The primary resource: each change enqueues that object's own key. */
  for(source: Source<P>): this {
    this.primarySource = source;
    return this;
  }

  /** Another resource: each change enqueues what `map` returns. */
  watches<T extends KubernetesObject>(source: Source<T>, map: MapFunc<T>): this {
    this.watchList.push({
      source: source as unknown as Source<KubernetesObject>,
      map: map as unknown as MapFunc<KubernetesObject>,
    });
    return this;
  }

  /** The primary objects as last seen (for map functions). Empty before the informers start. */
  list(): readonly P[] {
    return this.primary?.list() ?? [];
  }

  /**
   * An object as the watch of `path` last saw it (only what its transform kept); undefined when
   * that watch has not seen it or does not exist (yet).
   */
  cached(path: string, namespace: string, name: string): KubernetesObject | undefined {
    return this.byPath.get(path)?.get(namespace, name);
  }

  /** Every informer has listed (false before startInformers() has finished). */
  get synced(): boolean {
    return this.informersStarted && this.informers.every((i) => i.synced);
  }

  enqueue(req: Request): void {
    this.queue.add(requestKey(req));
  }

  async startInformers(): Promise<void> {
    const { kc, log } = this.opts;
    const source = this.primarySource;
    if (!source) throw new Error(`controller ${this.opts.name}: no primary resource (for())`);
    this.primary = new ResilientInformer<P>({
      kc,
      log,
      path: source.path,
      list: source.list,
      ...(source.accept ? { accept: source.accept } : {}),
      ...(source.transform ? { transform: source.transform } : {}),
      onChange: (o) => this.enqueue(requestOf(o)),
    });
    // The primary cache must exist before the other watches route events through it.
    await this.primary.start();
    this.informers.push(this.primary as unknown as ResilientInformer<KubernetesObject>);
    this.byPath.set(source.path, this.primary as unknown as ResilientInformer<KubernetesObject>);
    for (const w of this.watchList) {
      const informer = new ResilientInformer<KubernetesObject>({
        kc,
        log,
        path: w.source.path,
        list: w.source.list,
        ...(w.source.accept ? { accept: w.source.accept } : {}),
        ...(w.source.transform ? { transform: w.source.transform } : {}),
        onChange: (o, type) => {
          for (const req of w.map(o, type)) this.enqueue(req);
        },
      });
      this.informers.push(informer);
      this.byPath.set(w.source.path, informer);
      await informer.start();
    }
    this.informersStarted = true;
  }

  /** Starts the workers and the resync (call when leading). */
  startWorkers(): void {
    this.resyncTimer = setInterval(() => {
      const objects = this.list();
      for (const o of objects) this.enqueue(requestOf(o));
      this.opts.onResync?.(objects);
    }, this.opts.resyncMs);
    this.resyncTimer.unref();
    for (let i = 0; i < this.opts.workers; i++) this.workersDone.push(this.worker());
  }

  private async worker(): Promise<void> {
    const { reconciler, metrics, log, name } = this.opts;
    const keyField = this.opts.keyField ?? "key";
    for (;;) {
      const item = await this.queue.get();
      if (item === undefined) return;
      const reconcileId = randomBytes(6).toString("hex");
      const admission = this.queue.admission(item);
      const scope = {
        log: log.child({ controller: name, [keyField]: item, reconcileId }),
        reconcileId,
        ...(admission ? { admission } : {}),
      };
      const started = performance.now();
      try {
        const result = await reconciler.reconcile(parseRequestKey(item), scope);
        this.queue.forget(item);
        if (result.requeueAfterMs !== undefined) {
          this.queue.addAfter(item, result.requeueAfterMs);
          metrics.reconcileTotal.inc({ controller: name, result: "requeue_after" });
        } else metrics.reconcileTotal.inc({ controller: name, result: "success" });
      } catch (err) {
        metrics.reconcileTotal.inc({ controller: name, result: "error" });
        metrics.reconcileErrors.inc({ controller: name });
        if (err instanceof TerminalError) {
          // Retrying cannot help; a later change to the object brings it back.
          this.queue.forget(item);
          scope.log.error({ err: describeError(err) }, "reconcile failed for good");
        } else {
          scope.log.info({ err: describeError(err) }, "reconcile failed, retrying");
          // A busy peer's "ask again": the backoff capped.
          this.queue.addRateLimited(item, err instanceof RetryAfter ? err.backoffCapMs : undefined);
          // Wake up at the deadline at the latest, whatever the backoff says.
          if (err instanceof RetryAfter && Number.isFinite(err.deadlineMs))
            this.queue.addAfter(item, Math.max(0, err.deadlineMs));
        }
      } finally {
        metrics.reconcileTime.observe({ controller: name }, (performance.now() - started) / 1000);
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

const requestOf = (o: KubernetesObject): Request => ({
  namespace: o.metadata?.namespace ?? "",
  name: o.metadata?.name ?? "",
});
