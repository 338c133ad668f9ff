// The controller's environment, validated with zod (a bad value exits with code 2).
import { z } from "zod";
import { env } from "../common/config.ts";
import type { ControllerSettings } from "./context.ts";
import { transferJobEnvShape } from "./adapters/transfer-job/jobs.ts";
import { otlpEnv } from "./timeline/otlp.ts";

export const controllerEnv = z.object({
  KUBECONFIG: env.path().optional(),
  POD_NAMESPACE: z.string().min(1).default("ms2m-system"),
  POD_NAME: z.string().min(1).optional(),
  METRICS_PORT: env.port().default(8080),
  HEALTH_PORT: env.port().default(8081),
  LOG_LEVEL: env.logLevel().default("info"),
  LEADER_ELECT: env.bool().default(true),
  LEADER_ELECTION_LEASE_NAME: z.string().min(1).default("ms2m-controller"),
  MAX_CONCURRENT_RECONCILES: env.positiveInt().default(10),
  RESYNC_SECONDS: env.seconds().default(300),
  /**
   * "agent": checkpoints through the node's ms2m-agent (least privilege). "auto": the agent where
   * a ready one runs on the source node, otherwise the API server's node proxy (needs
   * config/components/node-proxy-fallback). "node-proxy": always the node proxy. Transfers go
   * through the agents in every mode but "disabled".
   */
  CHECKPOINT_MODE: z.enum(["agent", "auto", "node-proxy", "disabled"]).default("agent"),
  AGENT_PORT: env.port().default(9443),
  AGENT_NAMESPACE: z.string().min(1).optional(),
  AGENT_LABEL_SELECTOR: z.string().min(1).default("app.kubernetes.io/name=ms2m-agent"),
  AGENT_CA_FILE: env.path().optional(),
  /** The leader issues and rotates the agents' TLS Secret (see src/controller/certs/). */
  MANAGE_AGENT_TLS: env.bool().default(true),
  /** The agents' Secret (tls.crt, tls.key, ca.crt bundle), in POD_NAMESPACE. */
  AGENT_TLS_SECRET: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
    .max(253)
    .default("ms2m-agent-tls"),
  /** The signing CA's Secret (controller only), in POD_NAMESPACE. */
  AGENT_TLS_CA_SECRET: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
    .max(253)
    .default("ms2m-agent-ca"),
  AGENT_TOKEN_FILE: env.path().default("/var/run/secrets/kubernetes.io/serviceaccount/token"),
  PENDING_TIMEOUT_SECONDS: env.seconds().default(60),
  CHECKPOINT_TIMEOUT_SECONDS: env.seconds().default(120),
  TRANSFER_TIMEOUT_SECONDS: env.seconds().default(300),
  RESTORE_TIMEOUT_SECONDS: env.seconds().default(300),
  REPLAY_GRACE_SECONDS: env.seconds().default(60),
  FINALIZE_TIMEOUT_SECONDS: env.seconds().default(120),
  ROLLBACK_TIMEOUT_SECONDS: env.seconds().default(120),
  SOURCE_GRACE_SECONDS: z.coerce.number().int().min(0).max(300).default(1),
  /** Replaying re-checks the replay queue this often when no PROGRESS report came (reports drive it). */
  REPLAY_RECHECK_MS: env.positiveInt().default(5000),
  /**
   * The validating webhook on pods/eviction (MigrationPolicy: live migration instead of eviction,
   * src/controller/eviction/). 0 turns it off. Every replica serves it.
   */
  WEBHOOK_PORT: z.coerce.number().int().min(0).max(65535).default(9443),
  WEBHOOK_HOST: z.string().min(1).default("0.0.0.0"),
  /** The leader issues and rotates the webhook's certificate and writes its CA into WEBHOOK_CONFIG_NAME. */
  MANAGE_WEBHOOK_TLS: env.bool().default(true),
  WEBHOOK_TLS_SECRET: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
    .max(253)
    .default("ms2m-webhook-tls"),
  WEBHOOK_CA_SECRET: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
    .max(253)
    .default("ms2m-webhook-ca"),
  /** The Service in front of the controller's webhook port (its DNS names go into the certificate). */
  WEBHOOK_SERVICE: z.string().min(1).default("ms2m-webhook"),
  WEBHOOK_CONFIG_NAME: z.string().min(1).default("ms2m-eviction"),
  /**
   * The API server reaches the webhook at this URL instead of the Service (a controller running
   * outside the cluster); its host must be among WEBHOOK_EXTRA_NAMES.
   */
  WEBHOOK_URL: z.url().optional(),
  /** More names or IP addresses for the certificate (a webhook reached by URL), comma-separated. */
  WEBHOOK_EXTRA_NAMES: z
    .string()
    .default("")
    .transform((v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  /**
   * Checkpoint lifecycle sweep (src/controller/lifecycle/sweep.ts): the leader releases on the
   * agents what migrations that no longer exist, or finished longer than this ago, left behind
   * (records, archives, registry images, loaded images nothing runs from). 0 turns it off.
   */
  CHECKPOINT_TTL_SECONDS: z.coerce.number().min(0).default(3600),
  /** How often the sweep asks the agents. */
  CHECKPOINT_SWEEP_INTERVAL_SECONDS: env.seconds().default(60),
  /** Where the send side runs (agent, job, auto) and the transfer Job's settings. */
  ...transferJobEnvShape,
  /** Optional export of each migration's spans over OTLP/HTTP (src/controller/timeline/otlp.ts). */
  ...otlpEnv.shape,
});
export type ControllerEnv = z.infer<typeof controllerEnv>;

export function settingsFrom(e: ControllerEnv): ControllerSettings {
  const ms = (s: number) => Math.round(s * 1000);
  return {
    phaseTimeoutMs: {
      Pending: ms(e.PENDING_TIMEOUT_SECONDS),
      Checkpointing: ms(e.CHECKPOINT_TIMEOUT_SECONDS),
      Transferring: ms(e.TRANSFER_TIMEOUT_SECONDS),
      Restoring: ms(e.RESTORE_TIMEOUT_SECONDS),
      Replaying: ms(e.REPLAY_GRACE_SECONDS),
      Finalizing: ms(e.FINALIZE_TIMEOUT_SECONDS),
    },
    rollbackTimeoutMs: ms(e.ROLLBACK_TIMEOUT_SECONDS),
    sourceGraceSeconds: e.SOURCE_GRACE_SECONDS,
    replayRecheckMs: e.REPLAY_RECHECK_MS,
    checkpointTimeoutSeconds: Math.ceil(e.CHECKPOINT_TIMEOUT_SECONDS),
    sourceAgentRequired: e.CHECKPOINT_MODE === "agent" || e.MS2M_TRANSFER_RUNNER === "agent",
  };
}
