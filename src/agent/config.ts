import { z } from "zod";
import { env, parseEnv } from "../common/config.ts";

const csv = () =>
  z.string().transform((v) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** The agent's environment. Every variable is documented in docs/agent.md. */
export const agentConfigSchema = z.object({
  NODE_NAME: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, { message: "must be a node name" }),
  AGENT_PORT: env.port().default(9443),
  AGENT_BIND_ADDRESS: z.string().default("0.0.0.0"),
  AGENT_TLS_CERT_FILE: env.path(),
  AGENT_TLS_KEY_FILE: env.path(),
  /** CA that signed the agents' serving certificates: used to verify the target agent. */
  AGENT_TLS_CA_FILE: env.path(),
  /** Projected ServiceAccount token (audience ms2m-agent) presented to other agents. */
  AGENT_TOKEN_FILE: env.path().default("/var/run/secrets/ms2m/token"),
  AGENT_CHECKPOINTS_DIR: env.path().default("/var/lib/kubelet/checkpoints"),
  AGENT_WORK_DIR: env.path().default("/var/lib/ms2m-agent"),
  AGENT_STORAGE_DRIVER: z.enum(["overlay", "vfs"]).default("overlay"),
  AGENT_STORAGE_GRAPHROOT: env.path().default("/var/lib/containers/storage"),
  AGENT_STORAGE_RUNROOT: env.path().default("/run/containers/storage"),
  AGENT_MAX_ARCHIVE_BYTES: env.positiveInt().default(16 * 1024 ** 3),
  AGENT_MAX_CONCURRENT_TRANSFERS: env.positiveInt().default(4),
  AGENT_SHUTDOWN_GRACE_SECONDS: env.seconds().default(25),
  AGENT_SKOPEO: z.string().default("skopeo"),
  /** Registry hosts reached over plain HTTP (loopback test registries only). */
  AGENT_INSECURE_REGISTRIES: csv().default([]),
  AGENT_REGISTRY_CA_FILE: env.path().optional(),
  /** File with "username:password" for the checkpoint image repository. */
  AGENT_REGISTRY_CREDENTIALS_FILE: env.path().optional(),
  /** Local kubelet, for POST /v1/checkpoint (e.g. https://$(NODE_IP):10250). Unset: disabled. */
  AGENT_KUBELET_URL: z.url({ protocol: /^https$/ }).optional(),
  AGENT_KUBELET_CA_FILE: env.path().optional(),
  AGENT_KUBELET_TOKEN_FILE: env.path().default("/var/run/secrets/kubernetes.io/serviceaccount/token"),
  /**
   * How long checkpoint records (and the archives and registry images they name) are kept when
   * the controller never releases them.
   */
  AGENT_CHECKPOINT_TTL_SECONDS: env.seconds().default(3600),
  /**
   * The node's /etc/crio and /etc/containerd, mounted read-only: `GET /v1/runtime` reads the
   * runtime's checkpoint/restore settings there (agent/runtime.ts).
   */
  AGENT_CRIO_CONFIG_DIR: env.path().default("/etc/crio"),
  AGENT_CONTAINERD_CONFIG_DIR: env.path().default("/etc/containerd"),
  /**
   * Dead peers: no bytes from or to another agent or a registry for this long ends the call
   * (src/checkpoint/progress.ts). Agents send `102 Processing` every 2 s while they work.
   */
  AGENT_PROGRESS_TIMEOUT_SECONDS: env.seconds().default(15),
  /** How long positive/negative auth decisions are cached. */
  AGENT_AUTH_CACHE_SECONDS: env.seconds().default(10),
  LOG_LEVEL: env.logLevel().default("info"),
});

export type AgentConfig = z.infer<typeof agentConfigSchema>;

export function parseAgentConfig(source: NodeJS.ProcessEnv = process.env): AgentConfig {
  return parseEnv("ms2m-agent", agentConfigSchema, source);
}
