import { dirname } from "node:path";
import { buildScriptOutput } from "./binaries.ts";

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
    const value = await buildScriptOutput("build-node.sh");
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
