// A restored process keeps the source pod's hostname (CRIU restores the UTS namespace), so the
// SDK never derives its identity from HOSTNAME. It reads the Downward API file instead, which
// the kubelet mounts into the *new* pod, falling back to POD_NAME (also set per pod).
import { readFileSync } from "node:fs";

export const DEFAULT_POD_NAME_FILE = "/etc/podinfo/name";

export function readPodName(env: NodeJS.ProcessEnv = process.env): string {
  const file = env.MS2M_POD_NAME_FILE || DEFAULT_POD_NAME_FILE;
  try {
    const name = readFileSync(file, "utf8").trim();
    if (name) return name;
  } catch {
    // No Downward API volume: fall through to the environment.
  }
  const fromEnv = env.POD_NAME?.trim();
  if (fromEnv) return fromEnv;
  throw new Error(`cannot learn the pod name: neither ${file} nor POD_NAME is set`);
}
