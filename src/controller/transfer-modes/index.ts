import type { TransferMode } from "../../api/v1alpha1/index.ts";
import { direct } from "./direct.ts";
import { encryptedRegistry, registry } from "./registry.ts";
import type { Transport } from "./types.ts";

export type { Transport } from "./types.ts";

const transports: Record<TransferMode, Transport> = { Direct: direct, Registry: registry };

/** The transport of a mode; `encrypted` (spec.encryption) changes Registry's (registry.ts). */
export function transportFor(mode: TransferMode, opts: { encrypted?: boolean } = {}): Transport {
  if (mode === "Registry" && opts.encrypted) return encryptedRegistry;
  return transports[mode];
}
