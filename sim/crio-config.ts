// The simulated node's container runtime as CRI-O 1.36.1 at its checkpoint/restore interface:
// its configuration lives in the node's filesystem (<node root>/etc/crio/crio.conf.d/), where the
// ms2m-agent's read-only hostPath mount of /etc/crio finds it exactly as on a real node, and the
// node behaves as that configuration says (read once at boot, as CRI-O reads it at start).
//
// With `enable_criu_support = false` CRI-O 1.36.1 (server/container_checkpoint.go, and the check
// at the top of server/container_create.go):
//  - refuses CheckpointContainer with "checkpoint/restore support not available" (the kubelet
//    answers 500 "checkpointing of <ns>/<pod>/<container> failed (rpc error: code = Unknown desc = …)");
//  - does not look for checkpoint images in CreateContainer: the image is created as an ordinary
//    one, and an image without Entrypoint/Cmd and a container without command/args fails with
//    "no command specified" (internal/factory/container SpecSetProcessArgs): CreateContainerError.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { RuntimeOptions } from "./config.ts";
import type { NodePaths } from "./paths.ts";

/** What the simulated node reports in Node.status.nodeInfo.containerRuntimeVersion. */
export const SIM_RUNTIME_VERSION = "cri-o://1.36.1";
/** The drop-in CRI-O's packages install (later files in the folder override it). */
export const SIM_CRIO_DROP_IN = "/etc/crio/crio.conf.d/10-crio.conf";
/** CRI-O's error for a checkpoint with CRIU support off, as the kubelet relays it over the CRI. */
export const CRIO_CHECKPOINT_UNAVAILABLE =
  "rpc error: code = Unknown desc = checkpoint/restore support not available";

export function crioDropIn(runtime: RuntimeOptions): string {
  return [
    "# Written by the ms2m node simulator at boot: the CRI-O configuration of this node.",
    "[crio.runtime]",
    'default_runtime = "runc"',
    `enable_criu_support = ${runtime.criuSupport}`,
    "",
  ].join("\n");
}

export async function writeCrioConfig(paths: NodePaths, runtime: RuntimeOptions): Promise<void> {
  const file = paths.host(SIM_CRIO_DROP_IN);
  await mkdir(dirname(file), { recursive: true, mode: 0o755 });
  await writeFile(file, crioDropIn(runtime), { mode: 0o644 });
}
