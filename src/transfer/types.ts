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
const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, { message: "must be sha256:<64 hex>" });

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

export const checkpointRequestSchema = z.strictObject({
  migration: dnsSubdomain.optional(),
  namespace: dnsLabel,
  pod: dnsSubdomain,
  container: dnsLabel,
  timeoutSeconds: z.number().int().positive().max(3600).optional(),
});
export type CheckpointRequest = z.infer<typeof checkpointRequestSchema>;

export interface CheckpointResponse {
  /** Archive file name in the node's kubelet checkpoints folder. */
  archive: string;
  seconds: number;
}
