// Which pod this process runs in, and whether that changed since it last looked.
//
// Under CRIU a restored process is the same process with the same memory and environment: its
// HOSTNAME and a POD_NAME taken from the environment still name the *source* pod. Only files the
// kubelet mounts into the new pod tell the truth, so the identity comes from Downward API files.
// A pod UID tells a pod from a same-named successor (a StatefulSet pod restored under its own
// name), which the name alone cannot.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export const DEFAULT_POD_NAME_FILE = "/etc/podinfo/name";

export interface PodIdentity {
  /** metadata.name */
  name: string;
  /** metadata.uid, when the Downward API volume has it. */
  uid?: string;
  /**
   * Where the name came from. "env" (POD_NAME) is inherited by a restored process, so a restore
   * cannot be detected through it. Undefined: an application-provided source.
   */
  source?: "downward-api" | "env";
}

/** What a process learns by comparing the identity it last connected as with the current one. */
export type IdentityChange = "first" | "same" | "restored";

/**
 * The Downward API files the default identity source reads: `MS2M_POD_NAME_FILE` (default
 * /etc/podinfo/name) and `MS2M_POD_UID_FILE` (default: `uid` beside the name file, so one
 * volume with the items `name` and `uid` serves both, also under the simulator's path translation).
 */
export function podInfoFiles(env: NodeJS.ProcessEnv = process.env): {
  name: string;
  uid: string;
  labels: string;
} {
  const name = env.MS2M_POD_NAME_FILE || DEFAULT_POD_NAME_FILE;
  return {
    name,
    uid: env.MS2M_POD_UID_FILE || join(dirname(name), "uid"),
    labels: env.MS2M_POD_LABELS_FILE || join(dirname(name), "labels"),
  };
}

/** The label ms2m puts on a migration's target pod while it restores and replays. */
const TARGET_ROLE = /^migration\.ms2m\.io\/role="target"$/m;

/**
 * Whether this pod is a migration's target, from the Downward API labels file (`metadata.labels`,
 * one `key="value"` per line) when mounted. A process that starts fresh in such a pod is not the
 * restored one (the runtime fell back to a cold start): it must not consume the primary queue
 * before the controller has decided what to do with it.
 */
export function isMigrationTargetPod(env: NodeJS.ProcessEnv = process.env): boolean {
  return TARGET_ROLE.test(readTrimmed(podInfoFiles(env).labels) ?? "");
}

/**
 * Reads the pod identity, at every call (a restore can happen between two calls). Falls back to
 * POD_NAME only without a Downward API name file, and says so in `source`. Never HOSTNAME.
 */
export function readPodIdentity(env: NodeJS.ProcessEnv = process.env): PodIdentity {
  const files = podInfoFiles(env);
  const name = readTrimmed(files.name);
  if (name) {
    const uid = readTrimmed(files.uid);
    return uid ? { name, uid, source: "downward-api" } : { name, source: "downward-api" };
  }
  const fromEnv = env.POD_NAME?.trim();
  if (fromEnv) return { name: fromEnv, source: "env" };
  throw new Error(`cannot learn the pod name: neither ${files.name} nor POD_NAME is set`);
}

/**
 * Compares the identity last connected as with the current one. A different name, or a
 * different UID where both are known, means the process now runs in another pod.
 *
 * Throws when the name came from the Downward API before and from the environment now: after a
 * restore the environment names the source pod, so trusting it could hide exactly the restore
 * this is meant to find. The caller retries rather than guess.
 */
export function identityChange(previous: PodIdentity | undefined, current: PodIdentity): IdentityChange {
  if (!previous) return "first";
  if (previous.source === "downward-api" && current.source === "env")
    throw new Error("the Downward API pod name file disappeared; not falling back to POD_NAME");
  if (previous.name !== current.name) return "restored";
  if (previous.uid && current.uid && previous.uid !== current.uid) return "restored";
  return "same";
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim() || undefined;
  } catch {
    return undefined; // not mounted: the caller decides what that means
  }
}
