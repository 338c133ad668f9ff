// The transfer Job: the send side for a source node where no ms2m-agent runs. One Job per
// (migration, container), named from the migration UID so a restarted controller finds it, pinned
// to the source node, running the agent image's one-shot `send` (agent/send-job.ts) with the
// kubelet checkpoints folder mounted read-only. Its result comes back in the termination message.
import { createHash } from "node:crypto";
import type { V1EnvVar, V1Job, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import { z } from "zod";
import { env } from "../common/config.ts";
import { SEND_JOB_SUBCOMMAND } from "../transfer/job.ts";
import type { SendRequest } from "../transfer/types.ts";

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
  backoffLimit: number;
  /** The whole Job (pod start included) must end within this; the phase deadline. */
  activeDeadlineSeconds: number;
  checkpointsDir: string;
  logLevel?: string;
}

export const LABEL_APP_NAME = "app.kubernetes.io/name";
export const TRANSFER_JOB_APP = "ms2m-transfer";
export const LABEL_TRANSFER_MIGRATION_UID = "migration.ms2m.io/migration-uid";
export const LABEL_TRANSFER_CONTAINER = "migration.ms2m.io/container";
export const ANNOTATION_TRANSFER_SOURCE = "migration.ms2m.io/source-pod";
export const SEND_CONTAINER = "send";
export const TERMINATION_MESSAGE_PATH = "/dev/termination-log";
const TOKEN_DIR = "/var/run/secrets/ms2m";
const CA_DIR = "/etc/ms2m/tls";
const REGISTRY_DIR = "/etc/ms2m/registry";

/** Deterministic Job name per (migration, container); a DNS label (≤ 63: it becomes a pod label value). */
export function transferJobName(migrationUid: string, container: string): string {
  const prefix = `ms2m-transfer-${migrationUid.replaceAll("-", "").slice(0, 12)}-`;
  if (prefix.length + container.length <= 63) return prefix + container;
  const hash = createHash("sha256").update(container).digest("hex").slice(0, 8);
  return `${prefix}${container.slice(0, 63 - prefix.length - 9).replace(/-+$/, "")}-${hash}`;
}

export interface TransferJobInput {
  migrationUid: string;
  /** namespace/name of the source pod (annotation, for people). */
  source: string;
  sourceNode: string;
  request: SendRequest;
}

/** The Job for one send. No secret in the spec: the token is projected, the CA and registry
 * credentials are mounted from Secrets. */
export function buildTransferJob(input: TransferJobInput, s: TransferJobSettings): V1Job {
  const { request } = input;
  const name = transferJobName(input.migrationUid, request.container);
  const labels = {
    [LABEL_APP_NAME]: TRANSFER_JOB_APP,
    "app.kubernetes.io/component": "transfer",
    "app.kubernetes.io/part-of": "ms2m",
    [LABEL_TRANSFER_MIGRATION_UID]: input.migrationUid,
    [LABEL_TRANSFER_CONTAINER]: request.container,
  };
  const direct = request.destination.type === "agent";
  const envVars: V1EnvVar[] = [
    { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
    { name: "SEND_REQUEST", value: JSON.stringify(request) },
    { name: "SEND_RESULT_FILE", value: TERMINATION_MESSAGE_PATH },
    { name: "AGENT_CHECKPOINTS_DIR", value: s.checkpointsDir },
    { name: "AGENT_TOKEN_FILE", value: `${TOKEN_DIR}/token` },
    { name: "LOG_LEVEL", value: s.logLevel ?? "info" },
  ];
  const mounts: V1VolumeMount[] = [
    { name: "checkpoints", mountPath: s.checkpointsDir, readOnly: true },
    { name: "ms2m-token", mountPath: TOKEN_DIR, readOnly: true },
  ];
  const volumes: V1Volume[] = [
    { name: "checkpoints", hostPath: { path: s.checkpointsDir, type: "Directory" } },
    {
      name: "ms2m-token",
      projected: {
        sources: [
          // Audience ms2m-agent: accepted by the target agent only, useless against the API server.
          { serviceAccountToken: { audience: "ms2m-agent", expirationSeconds: 3600, path: "token" } },
        ],
      },
    },
  ];
  if (direct) {
    envVars.push({ name: "AGENT_TLS_CA_FILE", value: `${CA_DIR}/ca.crt` });
    mounts.push({ name: "agent-ca", mountPath: CA_DIR, readOnly: true });
    // Only the CA bundle: never the agents' private key.
    volumes.push({
      name: "agent-ca",
      secret: { secretName: s.caSecretName, items: [{ key: "ca.crt", path: "ca.crt" }], defaultMode: 0o444 },
    });
  } else {
    if (s.insecureRegistries.length > 0)
      envVars.push({ name: "AGENT_INSECURE_REGISTRIES", value: s.insecureRegistries.join(",") });
    if (s.registrySecretName) {
      envVars.push(
        { name: "AGENT_REGISTRY_CREDENTIALS_FILE", value: `${REGISTRY_DIR}/credentials` },
        { name: "AGENT_REGISTRY_CA_FILE", value: `${REGISTRY_DIR}/ca.crt` },
      );
      mounts.push({ name: "registry", mountPath: REGISTRY_DIR, readOnly: true });
      volumes.push({ name: "registry", secret: { secretName: s.registrySecretName, defaultMode: 0o400 } });
    }
  }
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name,
      namespace: s.namespace,
      labels,
      annotations: { [ANNOTATION_TRANSFER_SOURCE]: input.source },
    },
    spec: {
      backoffLimit: s.backoffLimit,
      activeDeadlineSeconds: Math.max(1, Math.ceil(s.activeDeadlineSeconds)),
      ttlSecondsAfterFinished: s.ttlSecondsAfterFinished,
      template: {
        metadata: { labels },
        spec: {
          // Pinned to the source node: the archive exists only there. No scheduler involved,
          // and tolerations as the agent's: a node being drained is the usual source.
          nodeName: input.sourceNode,
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
              name: SEND_CONTAINER,
              image: s.image,
              imagePullPolicy: "IfNotPresent",
              args: [SEND_JOB_SUBCOMMAND],
              env: envVars,
              terminationMessagePath: TERMINATION_MESSAGE_PATH,
              terminationMessagePolicy: "File",
              resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
              securityContext: {
                // uid 0 only to read the archives (root-owned, 0600); no capability at all, so
                // it cannot read anything root does not own, write anything, or escalate.
                runAsUser: 0,
                privileged: false,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: mounts,
            },
          ],
          volumes,
        },
      },
    },
  };
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
