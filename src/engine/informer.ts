// A client-node ListWatch that keeps going: restarted (with backoff) after errors, since the
// informer stops on any non-410 error, and restarted when no event arrived for a while, since
// watches can stall silently. Restarts resume from the last resourceVersion (410 relists).
// Optionally the watch asks for another representation (`accept`, e.g. metadata only) and a
// transform reduces every object before the cache and the handler see it (client-go's
// SetTransform): the cache then holds only what the handlers read.
import {
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type RequestContext,
} from "@kubernetes/client-node";
import { describeError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";

export interface InformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  onChange: (obj: T, type: "add" | "update" | "delete") => void;
  log: Logger;
  inactivityMs?: number;
  /** Accept header of the watch requests (the list function must ask for the same representation). */
  accept?: string;
  /** Applied to every listed and watched object before it is cached and handed to onChange. */
  transform?: (obj: T) => T;
}

type WatchCallback = (phase: string, apiObj: unknown, watchObj?: unknown) => void;

/** client-node's Watch with an Accept header and a transform of the objects it delivers. */
class TransformingWatch extends Watch {
  private readonly transform: ((obj: KubernetesObject) => KubernetesObject) | undefined;

  constructor(kc: KubeConfig, accept?: string, transform?: (obj: KubernetesObject) => KubernetesObject) {
    // Watch reads only these two members of its KubeConfig.
    const config = accept
      ? ({
          getCurrentCluster: () => kc.getCurrentCluster(),
          applySecurityAuthentication: async (ctx: RequestContext) => {
            await kc.applySecurityAuthentication(ctx);
            ctx.setHeaderParam("Accept", accept);
          },
        } as unknown as KubeConfig)
      : kc;
    super(config);
    this.transform = transform;
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: WatchCallback,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const transform = this.transform;
    if (!transform) return super.watch(path, queryParams, callback, done);
    // ERROR carries a Status, BOOKMARK only a resourceVersion: passed as they are.
    return super.watch(
      path,
      queryParams,
      (phase, obj, raw) =>
        callback(
          phase,
          phase === "ADDED" || phase === "MODIFIED" || phase === "DELETED"
            ? transform(obj as KubernetesObject)
            : obj,
          raw,
        ),
      done,
    );
  }
}

export class ResilientInformer<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private readonly opts: InformerOptions<T>;
  private lastActivity = Date.now();
  private restartDelayMs = 1000;
  private stopped = false;
  private watchdog?: NodeJS.Timeout;
  synced = false;

  constructor(opts: InformerOptions<T>) {
    this.opts = opts;
    const transform = opts.transform;
    const list = transform
      ? async () => {
          const l = await opts.list();
          // An empty PartialObjectMetadataList comes with `items: null`.
          return { ...l, items: (l.items ?? []).map(transform) };
        }
      : opts.list;
    this.lw = new ListWatch<T>(
      opts.path,
      new TransformingWatch(
        opts.kc,
        opts.accept,
        transform as ((o: KubernetesObject) => KubernetesObject) | undefined,
      ),
      list,
      false,
    );
    const touch = () => {
      this.lastActivity = Date.now();
      this.restartDelayMs = 1000;
    };
    this.lw.on("add", (o) => (touch(), opts.onChange(o, "add")));
    this.lw.on("update", (o) => (touch(), opts.onChange(o, "update")));
    this.lw.on("delete", (o) => (touch(), opts.onChange(o, "delete")));
    this.lw.on("connect", () => (this.lastActivity = Date.now()));
    this.lw.on("error", (err) => {
      // Our own restart aborts the running watch; that is not a failure (a new watch is on
      // its way), and restarting again would abort the new one, and so on forever.
      if ((err as { name?: unknown } | undefined)?.name === "AbortError") return;
      this.restartLater(err);
    });
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.lw.start();
    // A failed first list is retried by restartLater: synced only once a list succeeded.
    while (!this.stopped && this.lw.latestResourceVersion() === "") {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (this.stopped) return;
    this.synced = true;
    const inactivity = this.opts.inactivityMs ?? 5 * 60_000;
    this.watchdog = setInterval(
      () => {
        if (Date.now() - this.lastActivity > inactivity) {
          this.opts.log.debug({ path: this.opts.path }, "watch quiet for too long, restarting");
          this.lastActivity = Date.now();
          void this.lw.start().catch((err: unknown) => this.restartLater(err));
        }
      },
      Math.min(inactivity, 30_000),
    );
    this.watchdog.unref();
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    this.opts.log.warn(
      { path: this.opts.path, err: describeError(err), retryMs: this.restartDelayMs },
      "watch failed, restarting",
    );
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, 30_000);
    setTimeout(() => {
      if (!this.stopped) void this.lw.start().catch((e: unknown) => this.restartLater(e));
    }, delay).unref();
  }

  list(): readonly T[] {
    return this.lw.list();
  }

  /** The object as last seen (namespace "" for cluster-scoped objects). */
  get(namespace: string, name: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    await this.lw.stop();
  }
}
