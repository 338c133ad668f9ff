// Watches the pods bound to this node (list + watch with a field selector, as the kubelet does)
// and hands each one to its PodWorker.
import type { V1Pod, V1PodList } from "@kubernetes/client-node";
import type { Logger } from "../src/common/logger.ts";
import { type ApiClient } from "./api-client.ts";
import { PodWorker, type WorkerDeps } from "./pod-worker.ts";

export class PodManager {
  private readonly deps: WorkerDeps;
  private readonly api: ApiClient;
  private readonly log: Logger;
  private readonly workers = new Map<string, PodWorker>();
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(deps: WorkerDeps) {
    this.deps = deps;
    this.api = deps.api;
    this.log = deps.log;
  }

  /** Resolves once the first list has been processed. */
  async start(): Promise<void> {
    const rv = await this.relist();
    this.loop = this.watchLoop(rv);
  }

  get selector(): string {
    return `fieldSelector=${encodeURIComponent(`spec.nodeName=${this.deps.config.nodeName}`)}`;
  }

  private async relist(): Promise<string> {
    const list = await this.api.call<V1PodList>("GET", `/api/v1/pods?${this.selector}`);
    const seen = new Set<string>();
    for (const pod of list.items) {
      seen.add(pod.metadata?.uid ?? "");
      this.handle(pod);
    }
    for (const [uid, w] of this.workers) if (!seen.has(uid)) w.removed();
    return list.metadata?.resourceVersion ?? "";
  }

  private async watchLoop(initialRv: string): Promise<void> {
    let rv = initialRv;
    while (!this.abort.signal.aborted) {
      try {
        const path = `/api/v1/pods?${this.selector}&watch=1&allowWatchBookmarks=true&resourceVersion=${rv}&timeoutSeconds=300`;
        for await (const ev of this.api.watch<V1Pod>(path, this.abort.signal)) {
          if (ev.type === "ERROR") {
            const code = (ev.object as { code?: number }).code;
            if (code === 410) rv = await this.relist();
            break;
          }
          rv = ev.object.metadata?.resourceVersion ?? rv;
          if (ev.type === "BOOKMARK") continue;
          if (ev.type === "DELETED") this.workers.get(ev.object.metadata?.uid ?? "")?.removed();
          else this.handle(ev.object);
        }
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.log.warn({ err }, "pod watch failed; relisting");
        await new Promise((r) => setTimeout(r, 1_000));
        rv = await this.relist().catch(() => rv);
      }
    }
  }

  private handle(pod: V1Pod): void {
    const uid = pod.metadata?.uid ?? "";
    const phase = pod.status?.phase;
    let worker = this.workers.get(uid);
    if (!worker) {
      // Terminal pods are not restarted; a deleted terminal pod still gets its final deletion.
      if ((phase === "Succeeded" || phase === "Failed") && !pod.metadata?.deletionTimestamp) return;
      worker = new PodWorker(pod, this.deps);
      this.workers.set(uid, worker);
      void worker.done.then(() => this.workers.delete(uid));
      this.log.info({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}` }, "pod admitted");
      if (pod.metadata?.deletionTimestamp) worker.update(pod);
      else worker.start();
      return;
    }
    worker.update(pod);
  }

  find(namespace: string, name: string): PodWorker | undefined {
    for (const w of this.workers.values()) if (w.namespace === namespace && w.name === name) return w;
    return undefined;
  }

  list(): PodWorker[] {
    return [...this.workers.values()];
  }

  /** Kills every container at once (the node shuts down). */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all([...this.workers.values()].map((w) => w.terminate(0, false)));
    await this.loop?.catch(() => undefined);
  }
}
