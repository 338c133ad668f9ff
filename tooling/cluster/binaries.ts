import { fileURLToPath } from "node:url";
import { run } from "../exec.ts";

export interface Binaries {
  kubeBin: string;
  etcdBin: string;
}

let cached: Promise<Binaries> | undefined;

/**
 * Locates the Go-built control plane, building it first on a cold cache
 * (hack/build-kube.sh is a no-op when the cache is warm).
 */
export function controlPlaneBinaries(): Promise<Binaries> {
  cached ??= (async () => {
    const script = fileURLToPath(new URL("../../hack/build-kube.sh", import.meta.url));
    const out = await run("bash", [script]);
    const value = (key: string) => {
      const match = new RegExp(`^${key}=(.*)$`, "m").exec(out);
      if (!match?.[1]) throw new Error(`hack/build-kube.sh did not print ${key}`);
      return match[1];
    };
    return { kubeBin: value("KUBE_BIN"), etcdBin: value("ETCD_BIN") };
  })();
  return cached;
}
