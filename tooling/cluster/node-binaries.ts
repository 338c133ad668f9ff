import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../exec.ts";

/** What a real node runs, built or unpacked by hack/build-node.sh into the cache. */
export interface NodeBinaries {
  kubelet: string;
  crio: string;
  pinns: string;
  crictl: string;
  /** The criu wrapper (sets CRIU_FAULT and the CRIU configuration). */
  criu: string;
  /** Folder of the criu wrapper: put first on CRI-O's PATH so runc finds it. */
  criuDir: string;
  /** OCI layout of the pause image (tag `latest`). */
  pauseOci: string;
}

let cached: Promise<NodeBinaries> | undefined;

/** Locates the real-node binaries, building them first on a cold cache (no-op when warm). */
export function nodeBinaries(): Promise<NodeBinaries> {
  cached ??= (async () => {
    const script = fileURLToPath(new URL("../../hack/build-node.sh", import.meta.url));
    const out = await run("bash", [script]);
    const value = (key: string) => {
      const match = new RegExp(`^${key}=(.*)$`, "m").exec(out);
      if (!match?.[1]) throw new Error(`hack/build-node.sh did not print ${key}`);
      return match[1];
    };
    const criu = value("CRIU");
    return {
      kubelet: value("KUBELET"),
      crio: value("CRIO"),
      pinns: value("PINNS"),
      crictl: value("CRICTL"),
      criu,
      criuDir: dirname(criu),
      pauseOci: value("PAUSE_OCI"),
    };
  })();
  return cached;
}
