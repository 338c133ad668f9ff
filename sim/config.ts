// Configuration of one simulated node, written as JSON by the harness (or `make cluster-up`)
// and read by sim/main.ts. zod is the single source of the shape.
import { readFile } from "node:fs/promises";
import { z } from "zod";

/** Delays of each lifecycle step, in milliseconds: lets tests mimic a real node's timing. */
export const latencySchema = z.object({
  /** Simulated pull of a mapped image (registry pulls take what skopeo takes, plus this). */
  imagePullMs: z.number().int().min(0).default(0),
  /** Container create + start. */
  containerStartMs: z.number().int().min(0).default(0),
  /** From running to Ready when the container has no readiness probe. */
  readinessMs: z.number().int().min(0).default(0),
  /** Extra time a restore from a checkpoint image takes (CRIU restore). */
  restoreMs: z.number().int().min(0).default(0),
  /** Extra time a checkpoint takes on top of the process's own dump (CRIU freeze + dump). */
  checkpointMs: z.number().int().min(0).default(0),
});
export type Latencies = z.infer<typeof latencySchema>;

/**
 * The real nodes' timings (kubelet v1.36.3 + CRI-O 1.36.1 + runc + CRIU 4.2.1 on this project's
 * local cluster), measured, less what the simulator takes for the same step with zero latencies:
 * `npm run bench:checkpoint -- --rss 50,200,500 --reps 2` on 2026-12-02 (2-core VM, load average
 * 6.7 → 8.1 during the run; the reference consumer at ~73 MiB RSS, warm, medians; its
 * "Simulator latencies derived from this run" line; docs/benchmarks.md, "Real nodes").
 * imagePullMs: the real kubelet's pull of the 78 MB workload image from the local registry in
 * the same run (its Pulled event, 0.36 s). Re-run the command to re-derive them.
 */
export const REAL_CLUSTER_LATENCIES: Latencies = {
  imagePullMs: 360,
  containerStartMs: 1_940,
  readinessMs: 0,
  restoreMs: 680,
  checkpointMs: 2_900,
};

/**
 * What runs for an image: the stand-in for the image's ENTRYPOINT (`command`) and CMD (`args`).
 * A container's `args` replace `args`; its `command` is ignored, since image-internal paths do
 * not exist on the host.
 */
export const imageCommandSchema = z.object({
  command: z.array(z.string()).min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
});
export type ImageCommand = z.infer<typeof imageCommandSchema>;
export type ImageCommandInput = z.input<typeof imageCommandSchema>;

/**
 * The node's container runtime, CRI-O 1.36.1 as far as checkpoint/restore goes: its configuration
 * is written to <node root>/etc/crio/crio.conf.d/ at boot (sim/crio-config.ts) and honoured.
 */
export const runtimeSchema = z.object({
  /** `[crio.runtime] enable_criu_support`: off, checkpoints fail and checkpoint images are not restored. */
  criuSupport: z.boolean().default(true),
});
export type RuntimeOptions = z.infer<typeof runtimeSchema>;

export const nodeConfigSchema = z.object({
  nodeName: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/),
  nodeIp: z.string(),
  /** Folder of this node: its fake root, logs, control socket. */
  dir: z.string().startsWith("/"),
  apiServer: z.url(),
  /** Address and port pods use for the API server (no kube-proxy runs). */
  apiServerHost: z.string(),
  apiServerPort: z.number().int(),
  caFile: z.string(),
  /** Client certificate of the kubelet (CN=system:node:<name>, O=system:nodes). */
  clientCert: z.string(),
  clientKey: z.string(),
  /** Serving certificate for port 10250 (SAN = node IP). */
  servingCert: z.string(),
  servingKey: z.string(),
  kubeletPort: z.number().int().default(10250),
  capacity: z
    .object({ cpu: z.string(), memory: z.string(), pods: z.string() })
    .default({ cpu: "4", memory: "8Gi", pods: "110" }),
  labels: z.record(z.string(), z.string()).default({}),
  latencies: latencySchema.default(latencySchema.parse({})),
  images: z.record(z.string(), imageCommandSchema).default({}),
  /** Registries reached over plain HTTP (skopeo --src-tls-verify=false): `host:port` or `host:*`. */
  insecureRegistries: z.array(z.string()).default([]),
  storageDriver: z.enum(["vfs", "overlay"]).default("vfs"),
  /** Lease renewal and node status period. */
  heartbeatMs: z.number().int().positive().default(5_000),
  /** Extra environment for every container (e.g. the broker address). */
  podEnv: z.record(z.string(), z.string()).default({}),
  runtime: runtimeSchema.default(runtimeSchema.parse({})),
});
export type NodeConfig = z.infer<typeof nodeConfigSchema>;
export type NodeConfigInput = z.input<typeof nodeConfigSchema>;

export async function loadNodeConfig(path: string): Promise<NodeConfig> {
  return nodeConfigSchema.parse(JSON.parse(await readFile(path, "utf8")));
}
