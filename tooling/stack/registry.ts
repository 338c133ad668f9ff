// Debian's docker-registry on the cluster's bridge address.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../exec.ts";
import { ManagedProcess } from "../process.ts";
import { REGISTRY_PORT } from "./env.ts";

/**
 * Debian's docker-registry on the host bridge address (agents reach it from the node
 * namespaces). `dir` keeps its data (default: a temp folder removed on stop); `pidFile` records
 * its pid (the slot's pid file makes `make cluster-down` sweep it).
 */
export async function startRegistry(
  hostIp: string,
  options: { dir?: string; pidFile?: string } = {},
): Promise<{ pid: number | undefined; stop(): Promise<void> }> {
  // A real-node cluster runs its registry for the cluster's whole life (its nodes pull the
  // project's images from it): use that one.
  const existing = await fetch(`http://${hostIp}:${REGISTRY_PORT}/v2/`).catch(() => undefined);
  if (existing?.status === 200) return { pid: undefined, stop: async () => undefined };
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "ms2m-ctl-registry-")));
  await mkdir(dir, { recursive: true });
  const cfg = join(dir, "config.yml");
  await writeFile(
    cfg,
    [
      "version: 0.1",
      "log: { level: error, accesslog: { disabled: true } }",
      `storage: { filesystem: { rootdirectory: ${dir}/data }, delete: { enabled: true } }`,
      `http: { addr: ${hostIp}:${REGISTRY_PORT} }`,
      "",
    ].join("\n"),
  );
  const proc = new ManagedProcess("registry", join(dir, "registry.log"));
  await proc.start("docker-registry", ["serve", cfg], options.pidFile ?? join(dir, "pids"));
  await waitFor(
    "registry",
    async () => {
      if (!proc.running) throw new Error(`registry exited: ${await proc.tail()}`);
      const res = await fetch(`http://${hostIp}:${REGISTRY_PORT}/v2/`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    { timeoutMs: 15_000 },
  );
  return {
    pid: proc.pid,
    async stop() {
      await proc.stop();
      if (!options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}
