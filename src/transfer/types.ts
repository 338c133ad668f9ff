// Wire types of the agent's command API, shared by the agent (validation) and the client the
// controller uses. Names follow Kubernetes validation (DNS-1123).
import { z } from "zod";

const dnsLabel = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { message: "must be a DNS-1123 label" });
const dnsSubdomain = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { message: "must be a DNS-1123 subdomain" });
const imageRef = z.string().min(3).max(512);
const pemKey = z
  .string()
  .max(16 * 1024)
  .regex(/^-----BEGIN [A-Z0-9 ]+-----\r?\n[\s\S]+-----END [A-Z0-9 ]+-----\s*$/, {
    message: "must be a PEM key",
  });
const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, { message: "must be sha256:<64 hex>" });
/** A Kubernetes object UID (a UUID in practice; any DNS-1123 label is accepted). */
export const objectUidSchema = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { message: "must be an object UID" });

/**
 * The workload a checkpoint is of, at checkpoint time: the source pod's controller (a
 * StatefulSet, or the ReplicaSet of a Deployment) or, for a bare pod, the pod itself. Its UID
 * tells one incarnation of a workload from another of the same name (deleted and recreated):
 * a checkpoint is never restored into another incarnation than the one it was taken of.
 */
export const workloadRefSchema = z.strictObject({
  kind: z.string().regex(/^[A-Z][A-Za-z0-9]{0,62}$/, { message: "must be a Kind" }),
  name: dnsSubdomain,
  uid: objectUidSchema,
});
export type WorkloadRef = z.infer<typeof workloadRefSchema>;

export const sendRequestSchema = z.strictObject({
  migration: dnsSubdomain,
  namespace: dnsLabel,
  pod: dnsSubdomain,
  container: dnsLabel,
  /** Archive name as the kubelet returned it (full path in the checkpoints folder, or basename). */
  archive: z.string().min(1).max(1024),
  destination: z.discriminatedUnion("type", [
    z.strictObject({
      type: z.literal("agent"),
      /** https://<target agent pod IP>:9443 — the target node's agent, never a Service. */
      url: z.url({ protocol: /^https$/ }),
      /** Local image name on the target: localhost/<repo>:<tag>. */
      image: imageRef,
    }),
    z.strictObject({
      type: z.literal("registry"),
      /** <registry>/<repo>:<tag unique to migration and container>. */
      image: imageRef,
    }),
  ]),
  /** Keep the archive if the send fails (to retry without a new checkpoint). Default: delete. */
  retainArchiveOnFailure: z.boolean().optional(),
  /**
   * Registry only: encrypt the checkpoint image to these public keys (PEM, RSA ≥ 2048 or EC;
   * OCI image encryption, JWE recipients). Public keys only: nothing secret in a send.
   */
  encryption: z.strictObject({ recipients: z.array(pemKey).min(1).max(4) }).optional(),
  /**
   * The workload the checkpoint is of. A recorded checkpoint of another incarnation (UID) is
   * refused; the target records it with the image it loads, a registry image carries it.
   */
  workload: workloadRefSchema.optional(),
});
export type SendRequest = z.infer<typeof sendRequestSchema>;

export interface SendResponse {
  /** Image as loaded on the target (agent) or pushed (registry). */
  image: string;
  /** sha256 of the archive = the image's only layer. */
  digest: string;
  size: number;
  /** From send start until the image was usable (agent) or pushed (registry). */
  seconds: number;
  /** Direct mode: time the target spent loading into containers-storage. */
  targetLoadSeconds?: number;
}

export const pullRequestSchema = z.strictObject({
  migration: dnsSubdomain,
  /** Registry image, as pushed by a `send` with a registry destination. */
  source: imageRef,
  /** Local image name: localhost/<repo>:<tag>. */
  image: imageRef,
  /** The layer digest the send reported: pins the content. */
  expectedDigest: digest.optional(),
  /**
   * The image is encrypted: decrypt it with these private keys (PEM). Sent over the agents' TLS
   * only, used in memory for this pull, never written or logged. With keys, a plaintext image
   * is refused. With decryption the image may also be loaded under its registry name (`image`
   * equal to `source`), so the target pod's kubelet finds it present and never pulls it.
   */
  decryption: z.strictObject({ privateKeys: z.array(pemKey).min(1).max(4) }).optional(),
  /**
   * The workload the migration moves: an image annotated with another workload UID (another
   * incarnation) or another migration UID than `migration` is refused before anything is stored.
   */
  workload: workloadRefSchema.optional(),
});
export type PullRequest = z.infer<typeof pullRequestSchema>;

export interface PullResponse {
  image: string;
  digest: string;
  size: number;
  containerName: string;
  pullSeconds: number;
  loadSeconds: number;
}

/** `POST /v1/images`: the checkpointed container's base image, present on this node before the restore. */
export const baseImageRequestSchema = z.strictObject({
  migration: dnsSubdomain,
  /** By digest (the source pod's containerStatuses[].imageID). */
  image: imageRef,
});
export type BaseImageRequest = z.infer<typeof baseImageRequestSchema>;

export interface BaseImageResponse {
  image: string;
  /** Already in the node's containers-storage (nothing pulled). */
  present: boolean;
  pullSeconds: number;
}

/**
 * `POST /v1/checkpoint`. Named for the agent: the controller's `CheckpointRequest`
 * (src/controller/ports.ts) is what its phases ask of a checkpoint route, not this body.
 */
export const agentCheckpointRequestSchema = z.strictObject({
  migration: dnsSubdomain.optional(),
  namespace: dnsLabel,
  pod: dnsSubdomain,
  container: dnsLabel,
  timeoutSeconds: z.number().int().positive().max(3600).optional(),
  /** The workload the pod belongs to (recorded with the checkpoint; a repeat for another is refused). */
  workload: workloadRefSchema.optional(),
});
export type AgentCheckpointRequest = z.infer<typeof agentCheckpointRequestSchema>;

export interface CheckpointResponse {
  /** Archive file name in the node's kubelet checkpoints folder. */
  archive: string;
  seconds: number;
  /** With a `migration` key: sha256 and size of the archive, and when it was made. */
  digest?: string;
  size?: number;
  createdAt?: string;
}

/** One send of a recorded checkpoint (the agent's durable record). */
export interface SendRecord {
  /** Destination identity: `agent <url> <image>` or `registry <image>`. */
  destination: string;
  state: "Pending" | "Done";
  /** Registry image the send pushes (recorded before the push, so a release can delete it). */
  registryImage?: string;
  manifestDigest?: string;
  result?: SendResponse;
}

/**
 * What the agent recorded for a checkpoint with a migration key
 * (`GET /v1/checkpoints/{migration}/{container}`). `Pending`: requested, outcome not known yet.
 */
export interface CheckpointRecord {
  migration: string;
  namespace: string;
  pod: string;
  container: string;
  state: "Pending" | "Done";
  /** Basename in the checkpoints folder (Done). */
  archive?: string;
  digest?: string;
  size?: number;
  /** Kubelet call duration (Done). */
  seconds?: number;
  createdAt: string;
  updatedAt?: string;
  timeoutSeconds?: number;
  /** The workload the checkpoint is of (absent in records of agents that predate it). */
  workload?: WorkloadRef;
  sends?: SendRecord[];
}

/** `DELETE /v1/checkpoints/{migration}`: what the release removed (idempotent). */
export interface ReleaseResponse {
  migration: string;
  records: number;
  archives: number;
  /** Registry images the migration's sends pushed; `deleted: false` when the registry refused. */
  registryImages: { image: string; deleted: boolean; message?: string }[];
  /**
   * Target side: checkpoint images this agent loaded into its node's containers-storage for the
   * migration (received or pulled); `deleted: false` when kept (asked to, in use, shared) or
   * refused, with the reason in `message`. Absent from agents that predate it.
   */
  loadedImages?: { image: string; deleted: boolean; message?: string }[];
}

/**
 * `GET /v1/checkpoints`: every migration this agent holds something of (records, archives,
 * registry images its sends pushed, images it loaded), for the controller's lifecycle sweep.
 */
export const checkpointInventorySchema = z.strictObject({
  node: z.string(),
  migrations: z.array(
    z.strictObject({
      /** The migration UID (the records' key). */
      migration: z.string(),
      /** Workload UIDs the records name (normally one). */
      workloadUids: z.array(z.string()),
      /** Newest record time (ISO 8601): the age the TTLs are measured from. */
      newest: z.string(),
      records: z.number().int().min(0),
      archives: z.array(z.string()),
      registryImages: z.array(z.string()),
      loadedImages: z.array(z.string()),
      /** A request of the migration is running on this agent now: nothing of it is swept. */
      busy: z.boolean(),
    }),
  ),
});
export type CheckpointInventory = z.infer<typeof checkpointInventorySchema>;

// The runtime report of `GET /v1/runtime` is defined with the rules that produce and judge it.
export {
  runtimeNames,
  runtimeReportSchema,
  runtimeSettingSchema,
  type RuntimeName,
  type RuntimeReport,
  type RuntimeSetting,
} from "../checkpoint/runtime-config.ts";
