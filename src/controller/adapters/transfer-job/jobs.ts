// The transfer Job: the send side for a source node where no ms2m-agent runs. One Job per
// (migration, container), named from the migration UID so a restarted controller finds it, pinned
// to the source node, running the agent image's one-shot `send` (src/agent/jobs/send.ts) with the
// kubelet checkpoints folder mounted read-only. Its result comes back in the termination message.
// The cleanup Job (buildCleanupJob) runs the same image's one-shot `cleanup` (src/agent/jobs/cleanup.ts)
// with the same pod template: it deletes what a send Job leaves behind on a node without an agent
// (the archives: only this Job mounts the folder read-write) and the registry images it pushed.
import { createHash } from "node:crypto";
import type { V1EnvVar, V1Job, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import { z } from "zod";
import { env } from "../../../common/config.ts";
import {
  CLEANUP_JOB_SUBCOMMAND,
  MAX_CLEANUP_SETTLE_SECONDS,
  SEND_JOB_SUBCOMMAND,
  type CleanupRequest,
} from "../../../transfer/job.ts";
import type { SendRequest } from "../../../transfer/types.ts";
import { KEY_MIGRATION_UID } from "../../names.ts";

/** Where the send side runs: the source node's agent, a Job, or the agent where one is Ready (auto). */
export const transferRunners = ["auto", "agent", "job"] as const;
export type TransferRunner = (typeof transferRunners)[number];

const dnsName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
  .max(253);
const csv = () =>
  z.string().transform((v) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** The controller's environment for the transfer Job (merged into controllerEnv). */
export const transferJobEnvShape = {
  /** auto: the source node's agent when a Ready one runs there, otherwise a transfer Job. */
  MS2M_TRANSFER_RUNNER: z.enum(transferRunners).default("auto"),
  /** The ms2m-agent image (the Job runs its `send` subcommand). */
  TRANSFER_JOB_IMAGE: z.string().min(1).max(512).default("ghcr.io/ms2m/ms2m-agent:0.1.0"),
  TRANSFER_JOB_SERVICE_ACCOUNT: dnsName.default("ms2m-transfer"),
  /** Secret with the agents' CA bundle (only its ca.crt is mounted): verifies the target agent. */
  TRANSFER_JOB_CA_SECRET: dnsName.default("ms2m-agent-tls"),
  /** Optional Secret with `credentials` (user:password) and/or `ca.crt` for the checkpoint registry. */
  TRANSFER_JOB_REGISTRY_SECRET: dnsName.optional(),
  /** Registry hosts reached over plain HTTP (test registries only). */
  TRANSFER_JOB_INSECURE_REGISTRIES: csv().default([]),
  /** Backstop: the Job controller deletes a finished Job after this long even if we did not. */
  TRANSFER_JOB_TTL_SECONDS: z.coerce.number().int().min(0).max(86400).default(600),
  /** A finished cleanup Job (nobody reads it: its pod's termination message is for people) is deleted after this long. */
  TRANSFER_JOB_CLEANUP_TTL_SECONDS: z.coerce.number().int().min(0).max(86400).default(600),
  /** Pod retries inside one Job before it counts as failed (the controller retries retriable failures). */
  TRANSFER_JOB_BACKOFF_LIMIT: z.coerce.number().int().min(0).max(6).default(0),
  TRANSFER_JOB_CHECKPOINTS_DIR: env.path().default("/var/lib/kubelet/checkpoints"),
};

export interface TransferJobSettings {
  namespace: string;
  image: string;
  serviceAccountName: string;
  caSecretName: string;
  registrySecretName?: string | undefined;
  insecureRegistries: string[];
  ttlSecondsAfterFinished: number;
  /** The cleanup Job's; ttlSecondsAfterFinished when absent. */
  cleanupTtlSecondsAfterFinished?: number;
  backoffLimit: number;
  /** The whole Job (pod start included) must end within this; the phase deadline. */
  activeDeadlineSeconds: number;
  checkpointsDir: string;
  logLevel?: string;
}

export const LABEL_APP_NAME = "app.kubernetes.io/name";
export const LABEL_COMPONENT = "app.kubernetes.io/component";
export const TRANSFER_JOB_APP = "ms2m-transfer";
/** app.kubernetes.io/component of the send Jobs (JobTransfer deletes these) and the cleanup Jobs. */
export const TRANSFER_COMPONENT = "transfer";
export const CLEANUP_COMPONENT = "cleanup";
export const LABEL_TRANSFER_CONTAINER = "migration.ms2m.io/container";
export const ANNOTATION_TRANSFER_SOURCE = "migration.ms2m.io/source-pod";
export const SEND_CONTAINER = "send";
export const CLEANUP_CONTAINER = "cleanup";
export const TERMINATION_MESSAGE_PATH = "/dev/termination-log";
/** Pod retries of a cleanup Job (deletes are idempotent; a registry may be briefly unreachable). */
export const CLEANUP_BACKOFF_LIMIT = 2;
const TOKEN_DIR = "/var/run/secrets/ms2m";
const CA_DIR = "/etc/ms2m/tls";
const REGISTRY_DIR = "/etc/ms2m/registry";

const uid12 = (migrationUid: string) => migrationUid.replaceAll("-", "").slice(0, 12);

/** prefix + suffix as a DNS label of at most 63; a suffix that does not fit (or is not a label) is cut and hashed. */
function labelName(prefix: string, suffix: string): string {
  if (prefix.length + suffix.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(suffix))
    return prefix + suffix;
  const hash = createHash("sha256").update(suffix).digest("hex").slice(0, 8);
  const cut = suffix
    .replace(/[^-a-z0-9]/g, "-")
    .slice(0, 63 - prefix.length - 9)
    .replace(/-+$/, "");
  return `${prefix}${cut ? `${cut}-` : ""}${hash}`;
}

/** Deterministic Job name per (migration, container); a DNS label (≤ 63: it becomes a pod label value). */
export function transferJobName(migrationUid: string, container: string): string {
  return labelName(`ms2m-transfer-${uid12(migrationUid)}-`, container);
}

/**
 * Deterministic cleanup Job name per (migration, node): the Job pinned to the node whose
 * checkpoints folder it clears; without a node, the one that only deletes registry images.
 */
export function cleanupJobName(migrationUid: string, node?: string): string {
  const base = `ms2m-cleanup-${uid12(migrationUid)}`;
  return node ? labelName(`${base}-`, node) : base;
}

export interface TransferJobInput {
  migrationUid: string;
  /** namespace/name of the source pod (annotation, for people). */
  source: string;
  sourceNode: string;
  request: SendRequest;
}

/** What differs between the send and the cleanup Job; the rest of the spec is shared. */
interface OneShotJob {
  name: string;
  component: typeof TRANSFER_COMPONENT | typeof CLEANUP_COMPONENT;
  migrationUid: string;
  labels?: Record<string, string>;
  source: string;
  /** The node whose checkpoints folder the Job reads or clears; scheduled anywhere when absent. */
  nodeName?: string | undefined;
  container: string;
  subcommand: string;
  env: V1EnvVar[];
  mounts: V1VolumeMount[];
  volumes: V1Volume[];
  backoffLimit: number;
  ttlSecondsAfterFinished: number;
}

/** The kubelet checkpoints folder: read-only for the send, read-write only for the cleanup. */
function checkpointsFolder(
  s: TransferJobSettings,
  readOnly: boolean,
): Pick<OneShotJob, "env" | "mounts" | "volumes"> {
  return {
    env: [{ name: "AGENT_CHECKPOINTS_DIR", value: s.checkpointsDir }],
    mounts: [{ name: "checkpoints", mountPath: s.checkpointsDir, readOnly }],
    volumes: [{ name: "checkpoints", hostPath: { path: s.checkpointsDir, type: "Directory" } }],
  };
}

/** Insecure registries and, when configured, the registry Secret (credentials, ca.crt). */
function registryAccess(s: TransferJobSettings): Pick<OneShotJob, "env" | "mounts" | "volumes"> {
  const parts: Pick<OneShotJob, "env" | "mounts" | "volumes"> = { env: [], mounts: [], volumes: [] };
  if (s.insecureRegistries.length > 0)
    parts.env.push({ name: "AGENT_INSECURE_REGISTRIES", value: s.insecureRegistries.join(",") });
  if (s.registrySecretName) {
    parts.env.push(
      { name: "AGENT_REGISTRY_CREDENTIALS_FILE", value: `${REGISTRY_DIR}/credentials` },
      { name: "AGENT_REGISTRY_CA_FILE", value: `${REGISTRY_DIR}/ca.crt` },
    );
    parts.mounts.push({ name: "registry", mountPath: REGISTRY_DIR, readOnly: true });
    parts.volumes.push({
      name: "registry",
      secret: { secretName: s.registrySecretName, defaultMode: 0o400 },
    });
  }
  return parts;
}

const merge = (...parts: Pick<OneShotJob, "env" | "mounts" | "volumes">[]) => ({
  env: parts.flatMap((p) => p.env),
  mounts: parts.flatMap((p) => p.mounts),
  volumes: parts.flatMap((p) => p.volumes),
});

/** The pod template both Jobs share: the agent image's subcommand, unprivileged, no API token. */
function oneShotJob(j: OneShotJob, s: TransferJobSettings): V1Job {
  const labels = {
    [LABEL_APP_NAME]: TRANSFER_JOB_APP,
    [LABEL_COMPONENT]: j.component,
    "app.kubernetes.io/part-of": "ms2m",
    [KEY_MIGRATION_UID]: j.migrationUid,
    ...j.labels,
  };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name: j.name,
      namespace: s.namespace,
      labels,
      annotations: { [ANNOTATION_TRANSFER_SOURCE]: j.source },
    },
    spec: {
      backoffLimit: j.backoffLimit,
      // Also ends a pod that never starts (a node that is gone or never pulls the image).
      activeDeadlineSeconds: Math.max(1, Math.ceil(s.activeDeadlineSeconds)),
      ttlSecondsAfterFinished: j.ttlSecondsAfterFinished,
      template: {
        metadata: { labels },
        spec: {
          // Pinned to the source node: the archive exists only there. No scheduler involved,
          // and tolerations as the agent's: a node being drained is the usual source.
          ...(j.nodeName ? { nodeName: j.nodeName } : {}),
          tolerations: [{ operator: "Exists" }],
          restartPolicy: "Never",
          serviceAccountName: s.serviceAccountName,
          // No API-server token: the Job talks to no API, only to the target agent or registry.
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 10,
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            {
              name: j.container,
              image: s.image,
              imagePullPolicy: "IfNotPresent",
              args: [j.subcommand],
              env: [
                { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
                ...j.env,
                { name: "LOG_LEVEL", value: s.logLevel ?? "info" },
              ],
              terminationMessagePath: TERMINATION_MESSAGE_PATH,
              terminationMessagePolicy: "File",
              resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
              securityContext: {
                // uid 0 only for the archives (root-owned, 0600, in a root-owned folder); no
                // capability at all, so it cannot touch anything root does not own, write outside
                // its mounts (the cleanup's checkpoints folder is its only writable one), or escalate.
                runAsUser: 0,
                privileged: false,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: j.mounts,
            },
          ],
          volumes: j.volumes,
        },
      },
    },
  };
}

/** The Job for one send. No secret in the spec: the token is projected, the CA and registry
 * credentials are mounted from Secrets. */
export function buildTransferJob(input: TransferJobInput, s: TransferJobSettings): V1Job {
  const { request } = input;
  const direct = request.destination.type === "agent";
  const token: Pick<OneShotJob, "env" | "mounts" | "volumes"> = {
    env: [{ name: "AGENT_TOKEN_FILE", value: `${TOKEN_DIR}/token` }],
    mounts: [{ name: "ms2m-token", mountPath: TOKEN_DIR, readOnly: true }],
    volumes: [
      {
        name: "ms2m-token",
        projected: {
          sources: [
            // Audience ms2m-agent: accepted by the target agent only, useless against the API server.
            { serviceAccountToken: { audience: "ms2m-agent", expirationSeconds: 3600, path: "token" } },
          ],
        },
      },
    ],
  };
  const agentCa: Pick<OneShotJob, "env" | "mounts" | "volumes"> = {
    env: [{ name: "AGENT_TLS_CA_FILE", value: `${CA_DIR}/ca.crt` }],
    mounts: [{ name: "agent-ca", mountPath: CA_DIR, readOnly: true }],
    // Only the CA bundle: never the agents' private key.
    volumes: [
      {
        name: "agent-ca",
        secret: {
          secretName: s.caSecretName,
          items: [{ key: "ca.crt", path: "ca.crt" }],
          defaultMode: 0o444,
        },
      },
    ],
  };
  const parts = merge(
    {
      env: [
        { name: "SEND_REQUEST", value: JSON.stringify(request) },
        { name: "SEND_RESULT_FILE", value: TERMINATION_MESSAGE_PATH },
      ],
      mounts: [],
      volumes: [],
    },
    checkpointsFolder(s, true),
    token,
    direct ? agentCa : registryAccess(s),
  );
  return oneShotJob(
    {
      name: transferJobName(input.migrationUid, request.container),
      component: TRANSFER_COMPONENT,
      migrationUid: input.migrationUid,
      labels: { [LABEL_TRANSFER_CONTAINER]: request.container },
      source: input.source,
      nodeName: input.sourceNode,
      container: SEND_CONTAINER,
      subcommand: SEND_JOB_SUBCOMMAND,
      ...parts,
      backoffLimit: s.backoffLimit,
      ttlSecondsAfterFinished: s.ttlSecondsAfterFinished,
    },
    s,
  );
}

export interface CleanupJobInput {
  migrationUid: string;
  /** namespace/name of the source pod (annotation, for people). */
  source: string;
  /** The node whose checkpoints folder holds request.archives and archiveWindows (required when there are any). */
  node?: string | undefined;
  request: CleanupRequest;
}

/**
 * The Job that deletes a migration's leftovers: archives on `node`, named or by time window
 * (pinned there; the only Job that mounts the checkpoints folder read-write) and/or registry images (the registry Secret is
 * mounted only then). Nothing else: no token, no agent CA.
 */
export function buildCleanupJob(input: CleanupJobInput, s: TransferJobSettings): V1Job {
  const { request } = input;
  const windows = request.archiveWindows.length > 0;
  const archives = request.archives.length > 0 || windows;
  if (archives && !input.node) throw new Error("a cleanup Job that deletes archives needs their node");
  const node = archives ? input.node : undefined;
  const parts = merge(
    {
      env: [
        { name: "CLEANUP_REQUEST", value: JSON.stringify(request) },
        { name: "CLEANUP_RESULT_FILE", value: TERMINATION_MESSAGE_PATH },
      ],
      mounts: [],
      volumes: [],
    },
    ...(archives ? [checkpointsFolder(s, false)] : []),
    ...(request.registryImages.length > 0 ? [registryAccess(s)] : []),
  );
  return oneShotJob(
    {
      name: cleanupJobName(input.migrationUid, node),
      component: CLEANUP_COMPONENT,
      migrationUid: input.migrationUid,
      source: input.source,
      nodeName: node,
      container: CLEANUP_CONTAINER,
      subcommand: CLEANUP_JOB_SUBCOMMAND,
      ...parts,
      backoffLimit: CLEANUP_BACKOFF_LIMIT,
      ttlSecondsAfterFinished: s.cleanupTtlSecondsAfterFinished ?? s.ttlSecondsAfterFinished,
    },
    // An archive window is only listed once its checkpoint has ended: the Job may wait that long first.
    windows ? { ...s, activeDeadlineSeconds: s.activeDeadlineSeconds + MAX_CLEANUP_SETTLE_SECONDS } : s,
  );
}

/** The settings from the controller's environment. */
export function transferJobSettingsFrom(e: {
  POD_NAMESPACE: string;
  TRANSFER_JOB_IMAGE: string;
  TRANSFER_JOB_SERVICE_ACCOUNT: string;
  TRANSFER_JOB_CA_SECRET: string;
  TRANSFER_JOB_REGISTRY_SECRET?: string | undefined;
  TRANSFER_JOB_INSECURE_REGISTRIES: string[];
  TRANSFER_JOB_TTL_SECONDS: number;
  TRANSFER_JOB_CLEANUP_TTL_SECONDS?: number;
  TRANSFER_JOB_BACKOFF_LIMIT: number;
  TRANSFER_JOB_CHECKPOINTS_DIR: string;
  TRANSFER_TIMEOUT_SECONDS: number;
}): TransferJobSettings {
  return {
    namespace: e.POD_NAMESPACE,
    image: e.TRANSFER_JOB_IMAGE,
    serviceAccountName: e.TRANSFER_JOB_SERVICE_ACCOUNT,
    caSecretName: e.TRANSFER_JOB_CA_SECRET,
    registrySecretName: e.TRANSFER_JOB_REGISTRY_SECRET,
    insecureRegistries: e.TRANSFER_JOB_INSECURE_REGISTRIES,
    ttlSecondsAfterFinished: e.TRANSFER_JOB_TTL_SECONDS,
    ...(e.TRANSFER_JOB_CLEANUP_TTL_SECONDS !== undefined
      ? { cleanupTtlSecondsAfterFinished: e.TRANSFER_JOB_CLEANUP_TTL_SECONDS }
      : {}),
    backoffLimit: e.TRANSFER_JOB_BACKOFF_LIMIT,
    activeDeadlineSeconds: e.TRANSFER_TIMEOUT_SECONDS,
    checkpointsDir: e.TRANSFER_JOB_CHECKPOINTS_DIR,
  };
}

/**
 * Thrown by a transfer that runs elsewhere (a Job) and has not finished: the phase waits for the
 * Job's watch event instead of retrying with backoff.
 */
export class TransferInProgress extends Error {
  readonly job: string;
  /** This call created the Job (the phase records an Event). */
  readonly created: boolean;

  constructor(job: string, created: boolean, message: string) {
    super(message);
    this.name = "TransferInProgress";
    this.job = job;
    this.created = created;
  }
}
