import type { TransferMode } from "../../api/v1alpha1/index.ts";
import { direct } from "./direct.ts";
import { registry } from "./registry.ts";
import type { Transport } from "./types.ts";

export type { Transport } from "./types.ts";

const transports: Record<TransferMode, Transport> = { Direct: direct, Registry: registry };

export function transportFor(mode: TransferMode): Transport {
  return transports[mode];
}
