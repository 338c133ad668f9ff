// Following a migration: its object read every 250 ms until it ends (or is gone), and durations
// as kubectl writes them (90s, 10m, 1h30m).
import { sleep } from "../common/backoff.ts";
import type { StatefulMigration } from "../api/v1alpha1/statefulmigration.ts";
import { getMigration, type Kube } from "./kube.ts";
import { UsageError } from "./command.ts";

/** `250ms`, `90s`, `10m`, `1h30m`, or bare seconds → milliseconds. */
export function parseDuration(text: string): number {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  let total = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(text))) {
    total += Number(m[1]) * unit[m[2] as keyof typeof unit];
    end = re.lastIndex;
  }
  if (end !== text.length || end === 0) throw new UsageError(`not a duration: "${text}" (e.g. 90s, 10m, 1h)`);
  return total;
}

export const isTerminal = (m: StatefulMigration | undefined) =>
  m?.status?.phase === "Completed" || m?.status?.phase === "Failed";

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  onUpdate?: ((m: StatefulMigration) => void) | undefined;
}

/** Reads the migration until it is Completed or Failed; throws when it disappears or time runs out. */
export async function waitForMigration(
  kube: Kube,
  namespace: string,
  name: string,
  options: WaitOptions,
): Promise<StatefulMigration> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const m = await getMigration(kube, namespace, name);
    if (!m) throw new Error(`statefulmigration ${namespace}/${name} was deleted while waiting`);
    options.onUpdate?.(m);
    if (isTerminal(m)) return m;
    if (Date.now() > deadline) {
      throw new Error(
        `statefulmigration ${namespace}/${name} still ${m.status?.phase ?? "Pending"} after ${options.timeoutMs / 1000} s ` +
          `(it goes on: kubectl ms2m status ${name} -n ${namespace})`,
      );
    }
    await sleep(options.intervalMs ?? 250);
  }
}
