// One pod's lifecycle on a simulated node, like the kubelet's pod worker: volumes, images,
// init containers, containers (restarts with back-off), readiness, and termination that
// honours the grace period (SIGTERM, then SIGKILL) before the final deletion of the pod object.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { V1Container, V1ContainerStatus, V1Pod, V1PodCondition } from "@kubernetes/client-node";
import type { Logger } from "../src/common/logger.ts";
import { isNotFound, type ApiClient } from "./api-client.ts";
import type { SpecDump } from "./archive.ts";
import type { Latencies, NodeConfig } from "./config.ts";
import { buildEnv, expand } from "./env.ts";
import type { EventRecorder } from "./events.ts";
import { ImageError, type ImageService, type ResolvedImage } from "./images.ts";
import type { NodePaths } from "./paths.ts";
import { probeOnce } from "./probes.ts";
import type { Container, ContainerSpec, ProcessRuntime } from "./runtime.ts";
import type { VolumeManager } from "./volumes.ts";

export interface WorkerDeps {
  api: ApiClient;
  config: NodeConfig;
  paths: NodePaths;
  images: ImageService;
  runtime: ProcessRuntime;
  volumes: VolumeManager;
  events: EventRecorder;
  log: Logger;
  latencies: () => Latencies;
}

/** Raised when a container cannot be created; its reason becomes the waiting reason. */
class CreateError extends Error {
  readonly reason: string;

  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

interface Terminated {
  exitCode: number;
  reason: string;
  message?: string;
  startedAt: Date;
  finishedAt: Date;
  containerID: string;
}

interface ContainerRecord {
  spec: V1Container;
  init: boolean;
  waiting: { reason: string; message?: string } | undefined;
  current: Container | undefined;
  terminated: Terminated | undefined;
  lastTerminated: Terminated | undefined;
  restartCount: number;
  ready: boolean;
  imageName: string;
  imageId: string;
  /** Settles once the current instance's exit is recorded (terminated, with its message). */
  exitRecorded?: Promise<unknown>;
}

/**
 * Fault injection for tests (simulated nodes only): a pod with this annotation set to "true" that
 * is restored from a checkpoint image gets a fresh process instead, as a runtime that silently
 * falls back to a cold start would. Target pods inherit the source pod's annotations.
 */
export const ANNOTATION_RESTORE_AS_FRESH_START = "sim.ms2m.io/restore-as-fresh-start";

/** Simulator variables that name host paths or this node: recomputed for a restored process. */
const TRANSLATED_ENV = [
  "MS2M_CONTAINER_ROOT",
  "MS2M_MOUNTS",
  "MS2M_POD_NAME_FILE",
  "MS2M_NODE_NAME",
  "MS2M_CHECKPOINT_SOCKET",
  "MS2M_RESTORE_FROM",
];

/**
 * What CRI-O with `enable_criu_support = false` does with a checkpoint image: without a command
 * or args, "no command specified" (CreateContainerError); with them, the command is not in the
 * image's filesystem (the checkpoint archive), so the OCI runtime cannot start it.
 */
function noRestore(c: V1Container): CreateError {
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  if (argv.length === 0) return new CreateError("CreateContainerError", "no command specified");
  return new CreateError(
    "RunContainerError",
    `runc create failed: unable to start container process: exec: "${argv[0]}": executable file not found in $PATH`,
  );
}

const BACKOFF_START_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export class PodWorker {
  private pod: V1Pod;
  private readonly deps: WorkerDeps;
  private readonly log: Logger;
  private readonly records = new Map<string, ContainerRecord>();
  private readonly abort = new AbortController();
  private readonly startTime = new Date();
  private mounts = new Map<string, string>();
  private initialized = false;
  private sandboxReady = false;
  private terminating: Promise<void> | undefined;
  private pushing: Promise<void> | undefined;
  private dirty = false;
  private finished = false;
  /** Resolves when the worker is done (pod gone from this node). */
  readonly done: Promise<void>;
  private resolveDone: () => void = () => undefined;

  constructor(pod: V1Pod, deps: WorkerDeps) {
    this.pod = pod;
    this.deps = deps;
    this.log = deps.log.child({ pod: `${this.namespace}/${this.name}` });
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    for (const c of pod.spec?.initContainers ?? []) this.records.set(c.name, this.newRecord(c, true));
    for (const c of pod.spec?.containers ?? []) this.records.set(c.name, this.newRecord(c, false));
  }

  get name(): string {
    return this.pod.metadata?.name ?? "";
  }

  get namespace(): string {
    return this.pod.metadata?.namespace ?? "default";
  }

  get uid(): string {
    return this.pod.metadata?.uid ?? "";
  }

  get current(): V1Pod {
    return this.pod;
  }

  private newRecord(spec: V1Container, init: boolean): ContainerRecord {
    return {
      spec,
      init,
      waiting: { reason: init ? "PodInitializing" : "ContainerCreating" },
      current: undefined,
      terminated: undefined,
      lastTerminated: undefined,
      restartCount: 0,
      ready: false,
      imageName: spec.image ?? "",
      imageId: "",
    };
  }

  /** The running process of a container, for checkpoints and logs. */
  container(name: string): Container | undefined {
    const c = this.records.get(name)?.current;
    return c?.running ? c : undefined;
  }

  logFile(name: string): string | undefined {
    const rec = this.records.get(name);
    if (!rec) return undefined;
    return join(this.deps.paths.logDir(this.namespace, this.name, this.uid, name), `${rec.restartCount}.log`);
  }

  start(): void {
    void this.run().catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.log.error({ err }, "pod worker failed");
    });
  }

  /** A newer version of the pod object from the watch. */
  update(pod: V1Pod): void {
    this.pod = pod;
    if (pod.metadata?.deletionTimestamp) {
      const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
      void this.terminate(grace * 1000, true);
      return;
    }
    // kube-controller-manager's node lifecycle controller sets Ready=False on a node's pods when
    // it loses track of the node for a moment; the kubelet's status manager writes its own view
    // back on its next sync. So does the simulator, whenever the API's Ready differs from ours.
    const apiReady = pod.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
    if (this.sandboxReady && !this.finished && apiReady !== this.ready()) this.requestStatus();
  }

  /** The pod's Ready condition as this kubelet computes it. */
  private ready(): boolean {
    const regular = [...this.records.values()].filter((r) => !r.init);
    return regular.length > 0 && regular.every((r) => r.ready && r.current?.running) && !this.terminating;
  }

  /** The pod object is gone (force deletion): kill what runs, without a status update. */
  removed(): void {
    void this.terminate(0, false);
  }

  // ---- startup -------------------------------------------------------------------------

  private async run(): Promise<void> {
    this.requestStatus();
    this.mounts = await this.retry("volumes", () =>
      this.deps.volumes.setUp({ pod: this.pod, nodeIp: this.deps.config.nodeIp }),
    );
    this.sandboxReady = true;
    this.requestStatus();
    for (const rec of this.records.values()) {
      if (!rec.init) continue;
      await this.runInit(rec);
      if (this.abort.signal.aborted) return;
    }
    this.initialized = true;
    for (const rec of this.records.values()) if (!rec.init) rec.waiting = { reason: "ContainerCreating" };
    this.requestStatus();
    await Promise.all([...this.records.values()].filter((r) => !r.init).map((r) => this.runContainer(r)));
  }

  /** Retries a setup step with back-off until it succeeds or the pod terminates. */
  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let delay = BACKOFF_START_MS;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (this.abort.signal.aborted) throw err;
        this.log.warn({ err }, `${what} failed; retrying`);
        this.deps.events.pod(this.pod, "Warning", "FailedMount", (err as Error).message);
        await this.sleep(delay);
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      }
    }
  }

  private async runInit(rec: ContainerRecord): Promise<void> {
    const policy = this.pod.spec?.restartPolicy ?? "Always";
    for (;;) {
      const exit = await this.runOnce(rec);
      if (this.abort.signal.aborted || !exit) return;
      if (exit.exitCode === 0) return;
      if (policy === "Never") {
        this.finish("Failed");
        return;
      }
      await this.backoff(rec);
    }
  }

  private async runContainer(rec: ContainerRecord): Promise<void> {
    const policy = this.pod.spec?.restartPolicy ?? "Always";
    for (;;) {
      const exit = await this.runOnce(rec);
      if (this.abort.signal.aborted || !exit) return;
      const restart = policy === "Always" || (policy === "OnFailure" && exit.exitCode !== 0);
      if (!restart) {
        this.maybeFinish();
        return;
      }
      await this.backoff(rec);
    }
  }

  private async backoff(rec: ContainerRecord): Promise<void> {
    const delay = Math.min(BACKOFF_START_MS * 2 ** Math.max(0, rec.restartCount - 1), BACKOFF_MAX_MS);
    rec.waiting = {
      reason: "CrashLoopBackOff",
      message: `back-off ${delay / 1000}s restarting failed container`,
    };
    this.requestStatus();
    await this.sleep(delay);
  }

  /** Creates the container, retrying with back-off as the kubelet does on pull/create errors. */
  private async createWithRetries(rec: ContainerRecord): Promise<Container> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.createContainer(rec);
      } catch (err) {
        this.checkAborted();
        const reason =
          err instanceof ImageError || err instanceof CreateError ? err.reason : "CreateContainerError";
        const message = (err as Error).message;
        rec.waiting = { reason, message };
        this.deps.events.pod(this.pod, "Warning", "Failed", message, `spec.containers{${rec.spec.name}}`);
        this.requestStatus();
        const delay = Math.min(BACKOFF_START_MS * 2 ** attempt, 10_000);
        if (reason === "ErrImagePull") {
          // ErrImagePull first, then ImagePullBackOff while waiting for the next try.
          await this.sleep(Math.min(500, delay));
          rec.waiting = { reason: "ImagePullBackOff", message: `Back-off pulling image "${rec.spec.image}"` };
          this.requestStatus();
          await this.sleep(Math.max(0, delay - 500));
        } else {
          await this.sleep(delay);
        }
      }
    }
  }

  /** Creates and runs one instance of the container; resolves with its exit (undefined if aborted). */
  private async runOnce(rec: ContainerRecord): Promise<Terminated | undefined> {
    const container = await this.createWithRetries(rec);
    if (rec.terminated) {
      rec.lastTerminated = rec.terminated;
      rec.restartCount++;
    }
    rec.current = container;
    rec.terminated = undefined;
    rec.waiting = undefined;
    rec.ready = false;
    this.deps.events.pod(this.pod, "Normal", "Started", `Started container ${rec.spec.name}`);
    this.requestStatus();
    if (!rec.init) void this.watchReadiness(rec, container);
    const recorded = this.recordExit(rec, container);
    rec.exitRecorded = recorded;
    return recorded;
  }

  /** The instance's exit as the kubelet records it; a terminating pod waits for it (doTerminate). */
  private async recordExit(rec: ContainerRecord, container: Container): Promise<Terminated> {
    const exit = await container.exited;
    await this.deps.runtime.cleanup(container);
    rec.ready = false;
    // As the kubelet: the termination message is what the process left at
    // terminationMessagePath (at most 4096 bytes).
    const message = (await readFile(this.terminationFile(rec)).catch(() => Buffer.alloc(0)))
      .subarray(0, 4096)
      .toString("utf8");
    rec.terminated = {
      exitCode: exit.exitCode,
      reason: exit.exitCode === 0 ? "Completed" : "Error",
      ...(message ? { message } : {}),
      startedAt: container.startedAt,
      finishedAt: exit.finishedAt,
      containerID: `ms2m-sim://${container.id}`,
    };
    this.log.info({ container: rec.spec.name, exitCode: exit.exitCode }, "container exited");
    this.requestStatus();
    return rec.terminated;
  }

  private async createContainer(rec: ContainerRecord): Promise<Container> {
    const c = rec.spec;
    const lat = this.deps.latencies();
    const image = c.image ?? "";
    if (!image) throw new ImageError("InvalidImageName", "container has no image");
    const present = await this.deps.images.isPresent(image);
    if (!present || c.imagePullPolicy === "Always") {
      this.deps.events.pod(this.pod, "Normal", "Pulling", `Pulling image "${image}"`);
    }
    const resolved = await this.deps.images.ensure(image, c.imagePullPolicy);
    rec.imageName = resolved.name;
    rec.imageId = resolved.imageId;
    this.checkAborted();
    const mounts = this.containerMounts(c);
    if (resolved.checkpoint && !this.deps.config.runtime.criuSupport) {
      // CRI-O without CRIU support does not look for checkpoint images: it creates the image as
      // an ordinary one, which has no Entrypoint/Cmd (sim/crio-config.ts).
      throw noRestore(c);
    }
    const spec = resolved.checkpoint
      ? await this.restoreSpec(rec, resolved, mounts)
      : await this.freshSpec(rec, resolved, mounts);
    await this.sleep(lat.containerStartMs + (resolved.checkpoint ? lat.restoreMs : 0));
    this.checkAborted();
    await this.deps.volumes.containerRoot(spec.cwd, spec.mounts);
    await writeFile(this.terminationFile(rec), "", { mode: 0o600 });
    let restoreFile: string | undefined;
    if (
      resolved.checkpoint &&
      this.pod.metadata?.annotations?.[ANNOTATION_RESTORE_AS_FRESH_START] === "true"
    ) {
      // The fault: the container runs from the checkpoint's spec, but its process starts fresh.
      this.log.warn({ container: rec.spec.name }, "fault: restore as a fresh start");
    } else if (resolved.checkpoint) {
      // Beside the root folder, not in it: the root is rebuilt for every container instance.
      restoreFile = join(spec.cwd, "..", `restore-${Date.now()}.bin`);
      await writeFile(restoreFile, resolved.checkpoint.state, { mode: 0o600 });
    }
    const container = await this.deps.runtime.start(spec, restoreFile);
    if (this.abort.signal.aborted) {
      // Termination began while the process was starting: it must not outlive the pod.
      await container.stop(0);
      throw new Error("pod is terminating");
    }
    this.deps.events.pod(this.pod, "Normal", "Created", `Created container ${c.name}`);
    return container;
  }

  private containerMounts(c: V1Container): ContainerSpec["mounts"] {
    return (c.volumeMounts ?? []).map((vm) => {
      const source = this.mounts.get(vm.name);
      if (!source) throw new CreateError("CreateContainerConfigError", `volume ${vm.name} not found`);
      return {
        destination: vm.mountPath,
        source: vm.subPath ? join(source, vm.subPath) : source,
        readOnly: vm.readOnly ?? false,
      };
    });
  }

  /** Host file behind the container's terminationMessagePath (beside its root folder). */
  private terminationFile(rec: ContainerRecord): string {
    return join(this.deps.paths.containerRoot(this.uid, rec.spec.name), "..", "termination-log");
  }

  /** Simulator variables: where this container's mounts are on the host. */
  private hostPathEnv(rec: ContainerRecord, mounts: ContainerSpec["mounts"]): Record<string, string> {
    const mounted: Record<string, string> = {
      [rec.spec.terminationMessagePath ?? "/dev/termination-log"]: this.terminationFile(rec),
      ...Object.fromEntries(mounts.map((m) => [m.destination, m.source])),
    };
    const env: Record<string, string> = {
      MS2M_CONTAINER_ROOT: this.deps.paths.containerRoot(this.uid, rec.spec.name),
      MS2M_MOUNTS: JSON.stringify(mounted),
      MS2M_NODE_NAME: this.deps.config.nodeName,
    };
    // The file of a Downward API item with metadata.name, if the container mounts one.
    for (const vol of this.pod.spec?.volumes ?? []) {
      const items = [
        ...(vol.downwardAPI?.items ?? []),
        ...(vol.projected?.sources ?? []).flatMap((s) => s.downwardAPI?.items ?? []),
      ];
      const item = items.find((i) => i.fieldRef?.fieldPath === "metadata.name");
      const vm = (rec.spec.volumeMounts ?? []).find((m) => m.name === vol.name && !m.subPath);
      const source = this.mounts.get(vol.name);
      if (item && vm && source) env.MS2M_POD_NAME_FILE = join(source, item.path);
    }
    return env;
  }

  private async freshSpec(
    rec: ContainerRecord,
    resolved: ResolvedImage,
    mounts: ContainerSpec["mounts"],
  ): Promise<ContainerSpec> {
    const c = rec.spec;
    const cmd = this.deps.images.commandFor(resolved.name);
    if (!cmd) {
      throw new CreateError("CreateContainerError", `simulator: no command mapped for image "${c.image}"`);
    }
    const env = await buildEnv({
      pod: this.pod,
      container: c,
      nodeIp: this.deps.config.nodeIp,
      imageEnv: cmd.env,
      apiServerHost: this.deps.config.apiServerHost,
      apiServerPort: this.deps.config.apiServerPort,
      extra: { ...this.deps.config.podEnv, ...this.hostPathEnv(rec, mounts) },
      volumes: this.deps.volumes,
    }).catch((err: unknown) => {
      throw new CreateError("CreateContainerConfigError", (err as Error).message);
    });
    const args = (c.args ?? cmd.args).map((a) => expand(a, env));
    return this.spec(rec, resolved, [...cmd.command, ...args], env, mounts, env.HOSTNAME ?? this.name);
  }

  /**
   * As CRI-O restores: the process, its environment and hostname come from the checkpoint;
   * mounts must match, the base image must be available, and the new pod's volumes are used.
   */
  private async restoreSpec(
    rec: ContainerRecord,
    resolved: ResolvedImage,
    mounts: ContainerSpec["mounts"],
  ): Promise<ContainerSpec> {
    const ck = resolved.checkpoint;
    if (!ck) throw new Error("not a checkpoint image");
    const dump: SpecDump = ck.spec;
    for (const m of dump.mounts.filter((x) => x.type === "bind")) {
      if (!mounts.some((n) => n.destination === m.destination)) {
        throw new CreateError(
          "CreateContainerError",
          `failed to restore container ${rec.spec.name}: the checkpoint has a bind mount at ${m.destination} ` +
            "that the new container does not have",
        );
      }
    }
    const base = ck.config.rootfsImageName;
    const baseImage = await this.deps.images.ensure(base, "IfNotPresent").catch((err: unknown) => {
      throw new CreateError(
        "CreateContainerError",
        `failed to restore: base image ${base}: ${(err as Error).message}`,
      );
    });
    if (!this.deps.images.commandFor(base)) {
      throw new CreateError("CreateContainerError", `simulator: no command mapped for base image "${base}"`);
    }
    const env: Record<string, string> = {};
    for (const kv of dump.process.env) {
      const eq = kv.indexOf("=");
      if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    // Host-side paths differ on this node: translate them as the mount namespace would.
    for (const key of TRANSLATED_ENV) delete env[key];
    Object.assign(env, this.hostPathEnv(rec, mounts), { HOSTNAME: dump.hostname });
    this.log.info({ container: rec.spec.name, image: resolved.name }, "restoring from checkpoint image");
    // As under CRI-O, the restored container's image is the original base image.
    return this.spec(rec, baseImage, dump.process.args, env, mounts, dump.hostname);
  }

  private spec(
    rec: ContainerRecord,
    resolved: ResolvedImage,
    argv: string[],
    env: Record<string, string>,
    mounts: ContainerSpec["mounts"],
    hostname: string,
  ): ContainerSpec {
    const cwd = this.deps.paths.containerRoot(this.uid, rec.spec.name);
    return {
      podUid: this.uid,
      namespace: this.namespace,
      podName: this.name,
      name: rec.spec.name,
      image: resolved.name,
      imageId: resolved.imageId,
      argv,
      env,
      cwd,
      logFile: join(
        this.deps.paths.logDir(this.namespace, this.name, this.uid, rec.spec.name),
        `${rec.restartCount + (rec.terminated ? 1 : 0)}.log`,
      ),
      hostname,
      mounts,
    };
  }

  private async watchReadiness(rec: ContainerRecord, container: Container): Promise<void> {
    const probe = rec.spec.readinessProbe;
    if (!probe) {
      await this.sleep(this.deps.latencies().readinessMs).catch(() => undefined);
      if (container.running && rec.current === container) {
        rec.ready = true;
        this.requestStatus();
      }
      return;
    }
    await sleepFor((probe.initialDelaySeconds ?? 0) * 1000);
    let successes = 0;
    let failures = 0;
    while (container.running && rec.current === container && !this.abort.signal.aborted) {
      const ok = await probeOnce(probe, rec.spec, this.deps.config.nodeIp, {
        cwd: container.spec.cwd,
        env: container.spec.env,
      });
      successes = ok ? successes + 1 : 0;
      failures = ok ? 0 : failures + 1;
      const ready = rec.ready
        ? failures < (probe.failureThreshold ?? 3)
        : successes >= (probe.successThreshold ?? 1);
      if (ready !== rec.ready) {
        rec.ready = ready;
        this.requestStatus();
      }
      await sleepFor((probe.periodSeconds ?? 10) * 1000);
    }
  }

  private checkAborted(): void {
    if (this.abort.signal.aborted) throw new Error("pod is terminating");
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.abort.signal.aborted) return reject(new Error("pod is terminating"));
      const t = setTimeout(resolve, ms);
      this.abort.signal.addEventListener(
        "abort",
        () => {
          clearTimeout(t);
          reject(new Error("pod is terminating"));
        },
        { once: true },
      );
    });
  }

  // ---- termination ---------------------------------------------------------------------

  terminate(graceMs: number, deleteObject: boolean): Promise<void> {
    this.terminating ??= this.doTerminate(graceMs, deleteObject).catch((err: unknown) => {
      this.log.error({ err }, "termination failed");
    });
    return this.terminating;
  }

  private async doTerminate(graceMs: number, deleteObject: boolean): Promise<void> {
    this.abort.abort();
    const running = [...this.records.values()].filter((r) => r.current?.running);
    this.log.info({ graceMs, containers: running.length }, "terminating pod");
    for (const r of running) {
      this.deps.events.pod(this.pod, "Normal", "Killing", `Stopping container ${r.spec.name}`);
    }
    await Promise.all(running.map((r) => r.current?.stop(graceMs)));
    // The final statuses (and termination messages) are recorded before the last status push:
    // a pod deleted before that would go with a container that never terminated.
    // (Bounded: a runtime cleanup that hangs does not hold the pod's deletion.)
    await Promise.all(running.map((r) => r.current?.exited));
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(running.map((r) => r.exitRecorded?.catch(() => undefined))),
      new Promise((resolve) => (bound = setTimeout(resolve, 5000))),
    ]);
    clearTimeout(bound);
    for (const r of this.records.values()) {
      if (!r.terminated && !r.current) {
        r.waiting = undefined;
        r.terminated = {
          exitCode: 0,
          reason: "ContainerStatusUnknown",
          message: "The container could not be located when the pod was terminated",
          startedAt: this.startTime,
          finishedAt: new Date(),
          containerID: "",
        };
      }
    }
    if (deleteObject) {
      const failed = [...this.records.values()].some((r) => !r.init && (r.terminated?.exitCode ?? 0) !== 0);
      this.finish(failed ? "Failed" : "Succeeded");
      await this.pushing;
      await this.flushStatus();
      try {
        await this.deps.api.call("DELETE", `/api/v1/namespaces/${this.namespace}/pods/${this.name}`, {
          apiVersion: "v1",
          kind: "DeleteOptions",
          gracePeriodSeconds: 0,
          preconditions: { uid: this.uid },
        });
      } catch (err) {
        if (!isNotFound(err) && !/Precondition failed|UID in precondition/.test((err as Error).message)) {
          this.log.warn({ err }, "final deletion failed");
        }
      }
    }
    this.finished = true;
    await rm(this.deps.paths.podDir(this.uid), { recursive: true, force: true }).catch(() => undefined);
    this.resolveDone();
  }

  // ---- status ----------------------------------------------------------------------------

  private phaseOverride: "Succeeded" | "Failed" | undefined;

  private finish(phase: "Succeeded" | "Failed"): void {
    this.phaseOverride = phase;
    this.requestStatus();
  }

  private maybeFinish(): void {
    const regular = [...this.records.values()].filter((r) => !r.init);
    if (regular.every((r) => r.terminated && !r.current?.running)) {
      this.finish(regular.some((r) => (r.terminated?.exitCode ?? 0) !== 0) ? "Failed" : "Succeeded");
    }
  }

  private requestStatus(): void {
    this.dirty = true;
    if (this.pushing) return;
    this.pushing = (async () => {
      while (this.dirty && !this.finished) {
        this.dirty = false;
        await this.flushStatus();
      }
    })().finally(() => (this.pushing = undefined));
  }

  private async flushStatus(): Promise<void> {
    try {
      await this.deps.api.call(
        "PATCH",
        `/api/v1/namespaces/${this.namespace}/pods/${this.name}/status`,
        { metadata: { uid: this.uid }, status: this.status() },
        "merge",
      );
    } catch (err) {
      if (!isNotFound(err)) this.log.warn({ err }, "status update failed");
    }
  }

  private containerStatus(rec: ContainerRecord): V1ContainerStatus {
    const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
    const term = (t: Terminated) => ({
      terminated: {
        exitCode: t.exitCode,
        reason: t.reason,
        ...(t.message ? { message: t.message } : {}),
        startedAt: iso(t.startedAt),
        finishedAt: iso(t.finishedAt),
        ...(t.containerID ? { containerID: t.containerID } : {}),
      },
    });
    const cur = rec.current;
    let state: object;
    if (rec.waiting) state = { waiting: rec.waiting };
    else if (cur?.running) state = { running: { startedAt: iso(cur.startedAt) } };
    else if (rec.terminated) state = term(rec.terminated);
    else state = { waiting: { reason: "ContainerCreating" } };
    return {
      name: rec.spec.name,
      state,
      lastState: rec.lastTerminated ? term(rec.lastTerminated) : {},
      ready: rec.ready && !!cur?.running,
      started: !!cur?.running,
      restartCount: rec.restartCount,
      image: rec.spec.image ?? "",
      imageID: rec.imageId,
      ...(cur ? { containerID: `ms2m-sim://${cur.id}` } : {}),
    } as V1ContainerStatus;
  }

  private status(): object {
    const regular = [...this.records.values()].filter((r) => !r.init);
    const init = [...this.records.values()].filter((r) => r.init);
    const allReady = this.ready();
    const allStarted = regular.every((r) => r.current || r.terminated);
    // Running once every container has been started at least once (as the kubelet computes it).
    const phase = this.phaseOverride ?? (this.initialized && allStarted ? "Running" : "Pending");
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    const cond = (type: string, ok: boolean, reason?: string): V1PodCondition =>
      ({
        type,
        status: ok ? "True" : "False",
        lastTransitionTime: now as unknown as Date,
        ...(ok || !reason ? {} : { reason }),
      }) as V1PodCondition;
    const notReady = regular.filter((r) => !r.ready).map((r) => r.spec.name);
    const conditions = [
      cond("PodReadyToStartContainers", this.sandboxReady),
      cond("Initialized", this.initialized, "ContainersNotInitialized"),
      cond("Ready", allReady, "ContainersNotReady"),
      cond("ContainersReady", allReady, "ContainersNotReady"),
      cond("PodScheduled", true),
    ];
    if (notReady.length > 0 || regular.length === 0) {
      for (const c of conditions.filter((x) => x.type === "Ready" || x.type === "ContainersReady")) {
        c.message = `containers with unready status: [${notReady.join(" ")}]`;
      }
    }
    const ip = this.deps.config.nodeIp;
    return {
      phase,
      conditions: this.keepTransitionTimes(conditions),
      hostIP: ip,
      hostIPs: [{ ip }],
      podIP: ip,
      podIPs: [{ ip }],
      startTime: this.startTime.toISOString().replace(/\.\d{3}Z$/, "Z"),
      containerStatuses: regular.map((r) => this.containerStatus(r)),
      ...(init.length ? { initContainerStatuses: init.map((r) => this.containerStatus(r)) } : {}),
    };
  }

  private lastConditions = new Map<string, V1PodCondition>();

  /** lastTransitionTime only moves when the status of a condition changes. */
  private keepTransitionTimes(conditions: V1PodCondition[]): V1PodCondition[] {
    return conditions.map((c) => {
      const prev = this.lastConditions.get(c.type);
      const next =
        prev && prev.status === c.status ? { ...c, lastTransitionTime: prev.lastTransitionTime } : c;
      this.lastConditions.set(c.type, next);
      return next;
    });
  }
}

const sleepFor = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
