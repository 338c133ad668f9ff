// Broker cleanup for the benchmarks, the demo and the cluster tests: the shared RabbitMQ at
// 127.0.0.1:5672 keeps durable queues (primary queues, control queues with a 24 h expiry) after a
// run; these helpers delete the ones a run created, by name, and only while no consumer uses them.
import { execFile } from "node:child_process";
import { connect } from "amqplib";
import { LOCAL_BROKER_URL } from "./queues.ts";

function rabbitmqctl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile("rabbitmqctl", ["-q", ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
}

/** Queues on the broker with their consumer count (rabbitmqctl; empty when it is unavailable). */
export async function listQueues(): Promise<{ name: string; consumers: number }[]> {
  const out = await rabbitmqctl(["list_queues", "--no-table-headers", "name", "consumers"]).catch(() => "");
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 2 && f[0])
    .map(([name, consumers]) => ({ name: name!, consumers: Number(consumers) }));
}

export async function listExchanges(): Promise<string[]> {
  const out = await rabbitmqctl(["list_exchanges", "--no-table-headers", "name"]).catch(() => "");
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

/**
 * Deletes the idle queues (no consumer) and the exchanges whose names `match` says are ours.
 * Returns how many of each were deleted.
 */
export async function deleteBrokerObjects(
  match: (name: string) => boolean,
): Promise<{ queues: number; exchanges: number }> {
  const queues = (await listQueues()).filter((q) => q.consumers === 0 && match(q.name)).map((q) => q.name);
  const exchanges = (await listExchanges()).filter((e) => !e.startsWith("amq.") && match(e));
  if (!queues.length && !exchanges.length) return { queues: 0, exchanges: 0 };
  const conn = await connect(LOCAL_BROKER_URL);
  try {
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q);
    for (const e of exchanges) await ch.deleteExchange(e);
    await ch.close();
  } finally {
    await conn.close().catch(() => undefined);
  }
  return { queues: queues.length, exchanges: exchanges.length };
}

/**
 * The usual match for a run: the namespace's primary queues and exchanges (`q.<ns>.…`,
 * `ex.<ns>.…`), the control queues of its pods (`ms2m.control.<workload>-…`), and the replay and
 * status queues of its migrations (`ms2m.replay.<uid>`, `ms2m.status.<uid>`).
 */
export function runMatcher(ns: string, workloads: Iterable<string>, migrationUids: Iterable<string>) {
  const names = [...workloads];
  const uids = new Set(migrationUids);
  return (name: string): boolean => {
    if (name.startsWith(`q.${ns}.`) || name.startsWith(`ex.${ns}.`)) return true;
    if (name.startsWith("ms2m.control.")) {
      const pod = name.slice("ms2m.control.".length);
      return names.some((w) => pod === w || pod.startsWith(`${w}-`));
    }
    const m = /^ms2m\.(replay|status)\.(.+)$/.exec(name);
    return m !== null && uids.has(m[2]!);
  };
}
