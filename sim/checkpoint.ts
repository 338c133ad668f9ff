// The kubelet's checkpoint operation for one container: freeze-and-dump (here: the process's
// own state over its checkpoint socket), then the CRI-O archive at the kubelet's path. The
// container keeps running.
import { mkdir } from "node:fs/promises";
import type { Logger } from "../src/common/logger.ts";
import { writeCheckpointArchive, type SpecDump } from "./archive.ts";
import type { Latencies, RuntimeOptions } from "./config.ts";
import { CRIO_CHECKPOINT_UNAVAILABLE } from "./crio-config.ts";
import type { NodePaths } from "./paths.ts";
import type { PodManager } from "./pod-manager.ts";
import type { ProcessRuntime } from "./runtime.ts";

export class CheckpointNotFound extends Error {}

/** RFC 3339 with seconds, as the kubelet formats it in archive names. */
function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export class Checkpointer {
  private readonly pods: PodManager;
  private readonly runtime: ProcessRuntime;
  private readonly paths: NodePaths;
  private readonly latencies: () => Latencies;
  private readonly log: Logger;
  private readonly options: RuntimeOptions;

  constructor(
    pods: PodManager,
    runtime: ProcessRuntime,
    paths: NodePaths,
    latencies: () => Latencies,
    log: Logger,
    options: RuntimeOptions = { criuSupport: true },
  ) {
    this.pods = pods;
    this.runtime = runtime;
    this.paths = paths;
    this.latencies = latencies;
    this.log = log;
    this.options = options;
  }

  private readonly locks = new Map<string, Promise<unknown>>();

  /**
   * Returns the archive's path on the node (as the kubelet reports it); CheckpointNotFound for
   * an unknown pod or container. One checkpoint of a container at a time, as the runtime locks
   * the container while it dumps.
   */
  checkpoint(namespace: string, pod: string, containerName: string, timeoutMs: number): Promise<string> {
    const key = `${namespace}/${pod}/${containerName}`;
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => this.checkpointNow(namespace, pod, containerName, timeoutMs));
    this.locks.set(key, next);
    void next
      .catch(() => undefined)
      .finally(() => {
        if (this.locks.get(key) === next) this.locks.delete(key);
      });
    return next;
  }

  private async checkpointNow(
    namespace: string,
    pod: string,
    containerName: string,
    timeoutMs: number,
  ): Promise<string> {
    const worker = this.pods.find(namespace, pod);
    const container = worker?.container(containerName);
    if (!worker || !container) {
      throw new CheckpointNotFound(
        `container ${containerName} of pod ${namespace}/${pod} not found or not running`,
      );
    }
    // The kubelet finds the container, then CRI-O refuses before touching it.
    if (!this.options.criuSupport) throw new Error(CRIO_CHECKPOINT_UNAVAILABLE);
    const started = Date.now();
    // Tests wait for this line to know a request reached the kubelet (e.g. to kill the caller
    // between request and answer).
    this.log.info({ pod: `${namespace}/${pod}`, container: containerName }, "checkpoint started");
    const state = await this.runtime.checkpoint(container, timeoutMs);
    const dumped = Date.now();
    await new Promise((r) => setTimeout(r, this.latencies().checkpointMs));
    await mkdir(this.paths.checkpoints, { recursive: true, mode: 0o700 });
    const now = new Date();
    const nodePath = `/var/lib/kubelet/checkpoints/checkpoint-${pod}_${namespace}-${containerName}-${stamp(now)}.tar`;
    const path = this.paths.host(nodePath);
    const s = container.spec;
    const spec: SpecDump = {
      ociVersion: "1.0.2",
      process: {
        args: s.argv,
        env: Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
        cwd: "/",
      },
      hostname: s.hostname,
      mounts: s.mounts.map((m) => ({
        destination: m.destination,
        type: "bind",
        source: m.source,
        options: ["rbind", m.readOnly ? "ro" : "rw"],
      })),
      annotations: {
        "io.kubernetes.pod.name": pod,
        "io.kubernetes.pod.namespace": namespace,
        "io.kubernetes.pod.uid": s.podUid,
        "io.kubernetes.container.name": containerName,
        "io.kubernetes.cri-o.ImageName": s.image,
        "io.kubernetes.cri-o.ImageRef": s.imageId,
      },
    };
    await writeCheckpointArchive(path, {
      config: {
        id: container.id,
        name: `k8s_${containerName}_${pod}_${namespace}_${s.podUid}_0`,
        rootfsImage: s.image,
        rootfsImageRef: s.imageId,
        rootfsImageName: s.image,
        runtime: "ms2m-sim",
        createdTime: container.startedAt.toISOString(),
        checkpointedTime: now.toISOString(),
        restoredTime: "0001-01-01T00:00:00Z",
        restored: container.restoredFrom !== undefined,
      },
      spec,
      state,
      log: `ms2m-sim: dumped pid ${container.pid ?? "?"} (${state.length} bytes of state), left running\n`,
      stats: {
        freezingTimeUs: 0,
        frozenTimeUs: (dumped - started) * 1000,
        memdumpTimeUs: (dumped - started) * 1000,
        pagesWritten: Math.ceil(state.length / 4096),
      },
    });
    this.log.info(
      { pod: `${namespace}/${pod}`, container: containerName, path, ms: Date.now() - started },
      "checkpointed",
    );
    return nodePath;
  }
}
