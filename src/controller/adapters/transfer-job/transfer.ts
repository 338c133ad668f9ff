// TransferPort over a Kubernetes Job (./jobs.ts) for source nodes where no
// ms2m-agent runs, and the router that picks the agent or the Job per source node
// (MS2M_TRANSFER_RUNNER). The Job is created once per (migration, container), watched (the
// manager enqueues the migration on every change of a Job in the controller's namespace), read
// (termination message of its pod) and deleted once it has finished. What a send Job leaves
// behind where no agent runs (the archive on the source node, the registry images it pushed) is
// deleted by a cleanup Job the router starts when the migration ends (fire-and-forget).
import type { KubeConfig, V1Job, V1Pod } from "@kubernetes/client-node";
import { KubeRest, resourcePath } from "../../../kube/rest.ts";
import { Ms2mError, describeError, statusReasons, type StatusReason } from "../../../common/errors.ts";
import { getOrUndefined, isAlreadyExists, kubeCall, toMs2mError } from "../../../kube/errors.ts";
import {
  cleanupRequestSchema,
  parseSendJobResult,
  type CleanupRequest,
  type SendJobResult,
} from "../../../transfer/job.ts";
import { sendRequestSchema, type SendRequest } from "../../../transfer/types.ts";
import type {
  ArtifactRef,
  CleanupReport,
  TransferPort,
  TransferRequest,
  TransferResult,
} from "../../ports.ts";
import {
  LABEL_COMPONENT,
  SEND_CONTAINER,
  TRANSFER_COMPONENT,
  TransferInProgress,
  buildCleanupJob,
  buildTransferJob,
  transferJobName,
  type CleanupJobInput,
  type TransferJobSettings,
  type TransferRunner,
} from "./jobs.ts";
import { KEY_MIGRATION_UID } from "../../names.ts";
import { AgentTransfer, splitKey, type AgentLocator } from "../agent.ts";

const isTrue = (job: V1Job, ...types: string[]) =>
  (job.status?.conditions ?? []).some((c) => types.includes(c.type) && c.status === "True");
const reasonOf = (r: string): StatusReason => (r in statusReasons ? (r as StatusReason) : "InternalError");

export class JobTransfer implements TransferPort {
  private readonly rest: KubeRest;
  readonly settings: TransferJobSettings;
  private readonly locator: Pick<AgentLocator, "urlFor">;

  constructor(kc: KubeConfig, settings: TransferJobSettings, locator: Pick<AgentLocator, "urlFor">) {
    this.rest = new KubeRest(kc);
    this.settings = settings;
    this.locator = locator;
  }

  private get namespace(): string {
    return this.settings.namespace;
  }

  private jobsPath(name?: string): string {
    return resourcePath({
      group: "batch",
      version: "v1",
      plural: "jobs",
      namespace: this.namespace,
      name,
    });
  }

  /** The pods of a Job (its controller-uid label). */
  private podsOf(job: V1Job) {
    return this.rest.list<V1Pod>(resourcePath({ version: "v1", plural: "pods", namespace: this.namespace }), {
      labelSelector: `batch.kubernetes.io/controller-uid=${job.metadata?.uid ?? ""}`,
    });
  }

  /** The Job of this key, if one exists (running, finished or being deleted). */
  async jobFor(key: string): Promise<V1Job | undefined> {
    const { migration, container } = splitKey(key);
    const name = transferJobName(migration, container);
    return getOrUndefined(() => this.rest.get<V1Job>(this.jobsPath(name)), `get Job ${name}`);
  }

  /**
   * Idempotent: creates the Job on the first call, then reports it in progress (TransferInProgress)
   * until it has finished; returns its result and deletes it. A Job that failed with a definite
   * refusal (bad archive, 403, …) is a non-retriable error; any other failure (target unreachable,
   * deadline, pod lost) deletes the Job and is retried with a new one until the phase deadline.
   */
  async transfer(req: TransferRequest): Promise<TransferResult> {
    const { migration: uid, container } = splitKey(req.key);
    const name = transferJobName(uid, container);
    const job = await this.jobFor(req.key);
    if (!job) {
      await this.start(req, uid, name);
      throw new TransferInProgress(name, true, `transfer Job ${name} created on ${req.sourceNode}`);
    }
    if (job.metadata?.labels?.[KEY_MIGRATION_UID] !== uid) {
      throw new Ms2mError("Conflict", `Job ${name} exists and belongs to another migration`, {
        retriable: false,
      });
    }
    if (job.metadata?.deletionTimestamp) {
      throw new TransferInProgress(name, false, `transfer Job ${name} is being deleted`);
    }
    if (isTrue(job, "Complete", "SuccessCriteriaMet")) {
      const result = await this.resultOf(job);
      if (!result?.ok) {
        await this.deleteJob(name);
        throw new Ms2mError("InternalError", `transfer Job ${name} completed without a result; retrying`);
      }
      return this.finish(name, req, result);
    }
    if (isTrue(job, "Failed", "FailureTarget")) {
      const result = await this.resultOf(job);
      await this.deleteJob(name);
      const cond = (job.status?.conditions ?? []).find(
        (c) => (c.type === "Failed" || c.type === "FailureTarget") && c.status === "True",
      );
      const why =
        result && !result.ok
          ? `${result.reason}: ${result.message}`
          : `${cond?.reason ?? "Failed"}: ${cond?.message ?? "no result"}`;
      if (result && !result.ok && !result.retriable) {
        throw new Ms2mError(
          reasonOf(result.reason),
          `transfer Job ${name} on ${req.sourceNode} failed: ${why}`,
          {
            retriable: false,
          },
        );
      }
      throw new Ms2mError(
        "ServiceUnavailable",
        `transfer Job ${name} failed (${why}); retrying with a new Job`,
      );
    }
    // The pod wrote its result and exited (restartPolicy Never): a success is final and is taken
    // at once; the Job controller marks the Job Complete about a second later.
    const early = await this.resultOf(job);
    if (early?.ok) return this.finish(name, req, early);
    throw new TransferInProgress(
      name,
      false,
      `transfer Job ${name} is running${await this.waitingReason(job)}`,
    );
  }

  /** Deletes the finished Job and returns its result (the image it was asked to send). */
  private async finish(
    name: string,
    req: TransferRequest,
    r: Extract<SendJobResult, { ok: true }>,
  ): Promise<TransferResult> {
    await this.deleteJob(name);
    if (r.result.image !== req.image) {
      throw new Ms2mError("Conflict", `transfer Job ${name} sent ${r.result.image}, not ${req.image}`, {
        retriable: false,
      });
    }
    return { image: r.result.image, digest: r.result.digest, bytes: r.result.size };
  }

  private async start(req: TransferRequest, uid: string, name: string): Promise<void> {
    const destination: SendRequest["destination"] =
      req.mode === "Direct"
        ? { type: "agent", url: await this.locator.urlFor(req.targetNode), image: req.image }
        : { type: "registry", image: req.image };
    const parsed = sendRequestSchema.safeParse({
      migration: uid,
      namespace: req.namespace,
      pod: req.pod,
      container: req.container,
      archive: req.archivePath,
      destination,
      // Public key only: the Job's spec holds nothing secret.
      ...(req.mode === "Registry" && req.encryption
        ? { encryption: { recipients: [req.encryption.publicKey] } }
        : {}),
      // The pushed image and the target's loaded image carry the migration and workload UIDs.
      ...(req.workload ? { workload: req.workload } : {}),
    });
    if (!parsed.success) {
      throw new Ms2mError(
        "Invalid",
        `transfer Job request: ${parsed.error.issues[0]?.message ?? "invalid"}`,
        {
          retriable: false,
        },
      );
    }
    const body = buildTransferJob(
      {
        migrationUid: uid,
        source: `${req.namespace}/${req.pod}`,
        sourceNode: req.sourceNode,
        request: parsed.data,
      },
      this.settings,
    );
    try {
      await this.rest.create(this.jobsPath(), body);
    } catch (err) {
      if (isAlreadyExists(err)) return; // a concurrent reconcile (or the previous Job not yet gone)
      throw toMs2mError(err, `create Job ${name}`);
    }
  }

  /** The result the Job's newest pod left in its termination message. */
  private async resultOf(job: V1Job): Promise<SendJobResult | undefined> {
    const pods = await kubeCall(() => this.podsOf(job), "list transfer Job pods");
    const sorted = pods.items.sort(
      (a, b) =>
        new Date(b.metadata?.creationTimestamp ?? 0).getTime() -
        new Date(a.metadata?.creationTimestamp ?? 0).getTime(),
    );
    for (const pod of sorted) {
      const st = pod.status?.containerStatuses?.find((c) => c.name === SEND_CONTAINER);
      const message = st?.state?.terminated?.message ?? st?.lastState?.terminated?.message;
      const result = parseSendJobResult(message);
      if (result) return result;
    }
    return undefined;
  }

  /** Why the Job's pod is not running yet, if it says (image pull, mount, …): for the logs. */
  private async waitingReason(job: V1Job): Promise<string> {
    try {
      const pods = await this.podsOf(job);
      const waiting = pods.items
        .flatMap((p) => p.status?.containerStatuses ?? [])
        .map((c) => c.state?.waiting)
        .find((w) => w?.reason && w.reason !== "ContainerCreating");
      return waiting
        ? ` (pod waiting: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""})`
        : "";
    } catch {
      return "";
    }
  }

  private async deleteJob(name: string): Promise<void> {
    try {
      await this.rest.delete(this.jobsPath(name), { propagationPolicy: "Background" });
    } catch (err) {
      const e = toMs2mError(err, `delete Job ${name}`);
      if (e.reason !== "NotFound") throw e;
    }
  }

  /** Deletes every transfer Job of these migrations (finished or not). */
  async cleanup(artifacts: ArtifactRef[]): Promise<CleanupReport> {
    const uids = new Set(artifacts.flatMap((a) => (a.key ? [splitKey(a.key).migration] : [])));
    for (const uid of uids) await this.deleteJobsOf(uid);
    return { warnings: [] };
  }

  /** Deletes the migration's send Jobs; its cleanup Jobs (another component) are left to finish. */
  async deleteJobsOf(uid: string): Promise<void> {
    const jobs = await kubeCall(
      () =>
        this.rest.list<V1Job>(this.jobsPath(), {
          labelSelector: `${KEY_MIGRATION_UID}=${uid},${LABEL_COMPONENT}=${TRANSFER_COMPONENT}`,
        }),
      "list transfer Jobs",
    );
    for (const j of jobs.items) if (j.metadata?.name) await this.deleteJob(j.metadata.name);
  }

  /**
   * Creates the cleanup Job (buildCleanupJob) unless it exists: nobody waits for it or reads it
   * (its ttlSecondsAfterFinished removes it). Returns its name and whether this call created it.
   */
  async startCleanup(input: CleanupJobInput): Promise<{ name: string; created: boolean }> {
    const parsed = cleanupRequestSchema.safeParse(input.request);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Ms2mError("Invalid", `cleanup Job request: ${issue?.path.join(".")}: ${issue?.message}`, {
        retriable: false,
      });
    }
    const body = buildCleanupJob({ ...input, request: parsed.data }, this.settings);
    const name = body.metadata?.name ?? "";
    try {
      await this.rest.create(this.jobsPath(), body);
      return { name, created: true };
    } catch (err) {
      // Created by an earlier call (a retried finalization, a restarted controller).
      if (isAlreadyExists(err)) return { name, created: false };
      throw toMs2mError(err, `create Job ${name}`);
    }
  }
}

/** The cleanup Jobs a set of artifacts needs: per migration, one per source node, one for registry images. */
class CleanupPlan {
  private readonly jobs = new Map<string, CleanupJobInput & { what: string[] }>();

  private of(a: ArtifactRef, uid: string, node: string | undefined) {
    const k = `${uid} ${node ?? ""}`;
    let j = this.jobs.get(k);
    if (!j) {
      const request: CleanupRequest = {
        migration: uid,
        namespace: a.namespace ?? "",
        pod: a.pod ?? "",
        archives: [],
        archiveWindows: [],
        registryImages: [],
      };
      j = { migrationUid: uid, source: `${a.namespace}/${a.pod}`, node, request, what: [] };
      this.jobs.set(k, j);
    }
    return j;
  }

  /** False when the artifact does not name enough for the Job (no key, pod or container). */
  addArchive(a: ArtifactRef): boolean {
    if (!a.key || !a.archivePath || !a.namespace || !a.pod || !a.container || !a.sourceNode) return false;
    const j = this.of(a, splitKey(a.key).migration, a.sourceNode);
    j.request.archives.push({ container: a.container, archive: a.archivePath });
    j.what.push(`checkpoint archive ${a.archivePath} on ${a.sourceNode}`);
    return true;
  }

  /**
   * The archive a node-proxy checkpoint without an answer may have left: found by the Job on the
   * source node by name and kubelet time. False when the artifact does not name enough.
   */
  addWindow(a: ArtifactRef): boolean {
    const w = a.archiveWindow;
    if (!a.key || !w || !a.namespace || !a.pod || !a.container || !a.sourceNode) return false;
    const j = this.of(a, splitKey(a.key).migration, a.sourceNode);
    j.request.archiveWindows.push({ container: a.container, ...w });
    j.what.push(
      `any checkpoint archive of ${a.namespace}/${a.pod} container ${a.container} the kubelet on ${a.sourceNode} wrote between ${w.from} and ${w.to} (a node-proxy checkpoint whose answer was lost; looked for once it has ended, after ${w.settleUntil})`,
    );
    return true;
  }

  addImage(a: ArtifactRef): boolean {
    if (!a.key || !a.image || !a.namespace || !a.pod) return false;
    const j = this.of(a, splitKey(a.key).migration, undefined);
    j.request.registryImages.push({ image: a.image });
    j.what.push(`registry image ${a.image}`);
    return true;
  }

  get inputs(): (CleanupJobInput & { what: string[] })[] {
    return [...this.jobs.values()];
  }
}

/**
 * Picks where the send side runs: `agent` always the source node's agent, `job` always a Job,
 * `auto` the agent where a Ready one runs on the source node and a Job elsewhere. A Job that
 * already exists for the key is followed to its end (no second send after a route change).
 */
export class RoutedTransfer implements TransferPort {
  readonly agent: TransferPort;
  readonly job: JobTransfer;
  readonly runner: TransferRunner;
  private readonly locator: Pick<AgentLocator, "urlFor">;

  constructor(
    agent: TransferPort,
    job: JobTransfer,
    locator: Pick<AgentLocator, "urlFor">,
    runner: TransferRunner,
  ) {
    this.agent = agent;
    this.job = job;
    this.locator = locator;
    this.runner = runner;
  }

  /** Whether a Ready agent runs on the node. */
  async agentOn(node: string): Promise<boolean> {
    try {
      await this.locator.urlFor(node);
      return true;
    } catch (err) {
      if (err instanceof Ms2mError && err.reason === "ServiceUnavailable") return false;
      throw err;
    }
  }

  async transfer(req: TransferRequest): Promise<TransferResult> {
    if (this.runner === "agent") return this.agent.transfer(req);
    const viaJob =
      this.runner === "job" || (await this.job.jobFor(req.key)) || !(await this.agentOn(req.sourceNode));
    if (!viaJob) return this.agent.transfer(req);
    const sent = await this.job.transfer(req);
    // Encrypted Registry transfers: the Job pushed ciphertext; the target's agent decrypts it.
    return this.agent instanceof AgentTransfer ? this.agent.decryptOnTarget(req, sent) : sent;
  }

  /**
   * Deletes the migration's send Jobs, releases what the agents recorded, and starts cleanup Jobs
   * for what no agent can remove: archives on source nodes without an agent (a Job pinned to the
   * node), the archive a node-proxy checkpoint whose answer was lost may have left (a Job pinned
   * to the source node, agent or not: no agent recorded it) and registry images a send Job pushed
   * (a Job anywhere). The cleanup Jobs run on their own; what one could not even be created for
   * is reported as a warning.
   */
  async cleanup(artifacts: ArtifactRef[]): Promise<CleanupReport> {
    const warnings: string[] = [];
    const started: string[] = [];
    const errors: string[] = [];
    if (this.runner !== "agent") {
      try {
        await this.job.cleanup(artifacts);
      } catch (err) {
        errors.push(`transfer Jobs: ${describeError(err)}`);
      }
    }
    const viaAgent: ArtifactRef[] = [];
    const plan = new CleanupPlan();
    // One lookup per source node, not per artifact (a multi-container pod has several).
    const agents = new Map<string, Promise<boolean>>();
    const agentOn = (node: string) => {
      let p = agents.get(node);
      if (!p) agents.set(node, (p = this.agentOn(node).catch(() => true)));
      return p;
    };
    for (const a of artifacts) {
      if (a.archiveWindow && !plan.addWindow(a))
        warnings.push(
          `the checkpoint archive a node-proxy checkpoint of ${a.container ?? "a container"} may have written stays on ${a.sourceNode || "the source node"}`,
        );
      const agentThere = this.runner === "agent" || (a.sourceNode !== "" && (await agentOn(a.sourceNode)));
      // The window is this router's (a cleanup Job); the agent's release is by record.
      const { archiveWindow: _window, ...byRecord } = a;
      if (agentThere) viaAgent.push(byRecord);
      else {
        // The target's agent recorded what the Job sent it: released there (source = target).
        if (a.targetNode) viaAgent.push({ ...byRecord, sourceNode: a.targetNode });
        if (a.archivePath && !plan.addArchive(a))
          warnings.push(
            `no ms2m-agent on ${a.sourceNode || "the source node"}: checkpoint archive ${a.archivePath} stays on the node`,
          );
      }
      if (
        this.runner !== "agent" &&
        a.mode === "Registry" &&
        a.image &&
        (!agentThere || this.runner === "job") &&
        !plan.addImage(a)
      )
        warnings.push(`registry image ${a.image} was pushed by a transfer Job and is not deleted`);
    }
    for (const input of plan.inputs) {
      try {
        const { name, created } = await this.job.startCleanup(input);
        started.push(`Job ${name} ${created ? "deletes" : "already deletes"} ${input.what.join(", ")}`);
      } catch (err) {
        for (const what of input.what)
          warnings.push(`${what} stays: cleanup Job not created: ${describeError(err)}`);
      }
    }
    if (viaAgent.length > 0) {
      try {
        const report = await this.agent.cleanup(viaAgent);
        warnings.push(...(report?.warnings ?? []));
      } catch (err) {
        errors.push(describeError(err));
      }
    }
    if (errors.length > 0) throw new Ms2mError("ServiceUnavailable", errors.join("; "));
    return { warnings, started };
  }
}
