import { fileURLToPath } from "node:url";
import { run } from "../exec.ts";

export interface Binaries {
  kubeBin: string;
  etcdBin: string;
}

/**
 * Runs a hack/ build script (a no-op when its cache is warm) and returns a lookup of the
 * `KEY=value` lines it prints; a missing key throws, naming the script.
 */
export async function buildScriptOutput(script: string): Promise<(key: string) => string> {
  const out = await run("bash", [fileURLToPath(new URL(`../../hack/${script}`, import.meta.url))]);
  return (key: string) => {
    const match = new RegExp(`^${key}=(.*)$`, "m").exec(out);
    if (!match?.[1]) throw new Error(`hack/${script} did not print ${key}`);
    return match[1];
  };
}

let cached: Promise<Binaries> | undefined;

/**
 * Locates the Go-built control plane, building it first on a cold cache
 * (hack/build-kube.sh is a no-op when the cache is warm).
 */
export function controlPlaneBinaries(): Promise<Binaries> {
  cached ??= (async () => {
    const value = await buildScriptOutput("build-kube.sh");
    return { kubeBin: value("KUBE_BIN"), etcdBin: value("ETCD_BIN") };
  })();
  return cached;
}
