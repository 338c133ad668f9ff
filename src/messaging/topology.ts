// Broker objects a migration creates, and their removal.
//
// Everything is named from the migration's uid alone (ms2m.replay.<uid>, ms2m.status.<uid>),
// so cleanup needs nothing but that identity: it works after a failure, a cancellation or a
// controller restart that lost all memory. Cleanup deletes only these two queues (deleting a
// queue removes its bindings); the workload's exchange, primary queue and bindings are never
// touched, even when setup had to declare the exchange.
import { z } from "zod";
import { notFound } from "../common/errors.ts";
import { replayQueueName, statusQueueName } from "../protocol/replay.ts";
import type { BrokerPool } from "./broker-pool.ts";
import { isNotFound, toMs2mError } from "./broker-errors.ts";
import { backoffDelay, sleep } from "../common/backoff.ts";

export const replayTopologySchema = z.object({
  /** amqp(s)://user:pass@host/vhost, from the Secret the migration references. */
  brokerUrl: z.string().min(1),
  /** Exchange the workload's producers publish to. */
  exchange: z.string().min(1),
  exchangeType: z.enum(["fanout", "direct", "topic", "headers"]).default("fanout"),
  /** The workload's own queue (consumed by the source pod, then by the target pod). */
  primaryQueue: z.string().min(1),
  /** Binding key the workload bound its primary queue with; the replay queue uses the same. */
  routingKey: z.string().default(""),
  /** Broker-side safety net: an unused replay queue disappears after this long (x-expires). */
  replayQueueExpiresMs: z.number().int().positive().default(3_600_000),
});
export type ReplayTopologyInput = z.input<typeof replayTopologySchema>;
export type ReplayTopology = z.output<typeof replayTopologySchema>;

export interface MigrationQueues {
  replayQueue: string;
  statusQueue: string;
}

export const migrationQueues = (uid: string): MigrationQueues => ({
  replayQueue: replayQueueName(uid),
  statusQueue: statusQueueName(uid),
});

export interface SetupResult extends MigrationQueues {
  /** The exchange did not exist and was declared (it is left in place at cleanup). */
  exchangeDeclared: boolean;
  /** Messages waiting in the primary queue at setup (published before the replay queue existed). */
  primaryBacklog: number;
}

const queueArgs = (t: ReplayTopology) => ({
  durable: true,
  arguments: { "x-expires": t.replayQueueExpiresMs },
});

/**
 * Declares the replay and status queues and binds the replay queue to the workload's exchange.
 * Idempotent. Must run before the checkpoint: from the moment the binding exists, every message
 * published to the exchange is in both the primary queue and the replay queue.
 */
export async function setupReplay(
  pool: BrokerPool,
  uid: string,
  topology: ReplayTopology,
): Promise<SetupResult> {
  const { replayQueue, statusQueue } = migrationQueues(uid);
  const url = topology.brokerUrl;
  // Passive probes on throwaway channels: their 404 must not close the migration's channel.
  const primary = await pool
    .withTemporaryChannel(url, (ch) => ch.checkQueue(topology.primaryQueue))
    .catch((err: unknown) => {
      if (isNotFound(err)) throw notFound(`primary queue "${topology.primaryQueue}" does not exist`);
      throw err;
    });
  const exchangeDeclared = await pool
    .withTemporaryChannel(url, (ch) => ch.checkExchange(topology.exchange))
    .then(
      () => false,
      (err: unknown) => {
        if (!isNotFound(err)) throw err;
        return true;
      },
    );
  await pool.withChannel(url, uid, async (ch) => {
    if (exchangeDeclared)
      await ch.assertExchange(topology.exchange, topology.exchangeType, { durable: true });
    await ch.assertQueue(replayQueue, queueArgs(topology));
    await ch.bindQueue(replayQueue, topology.exchange, topology.routingKey);
    await ch.assertQueue(statusQueue, queueArgs(topology));
  });
  return { replayQueue, statusQueue, exchangeDeclared, primaryBacklog: primary.messageCount };
}

/**
 * Stops the replay queue from receiving new messages. Safe once the source stopped consuming:
 * from then on every new message stays in the primary queue for the target.
 */
export async function unbindReplay(pool: BrokerPool, uid: string, topology: ReplayTopology): Promise<void> {
  const { replayQueue } = migrationQueues(uid);
  await pool.withChannel(topology.brokerUrl, uid, (ch) =>
    ch.unbindQueue(replayQueue, topology.exchange, topology.routingKey).then(() => undefined),
  );
}

export interface QueueDepth {
  /** Messages ready for delivery (AMQP reports no unacknowledged count). */
  ready: number;
  consumers: number;
}

/** Depth of a queue, or undefined if it does not exist. */
export async function queueDepth(
  pool: BrokerPool,
  url: string,
  queue: string,
): Promise<QueueDepth | undefined> {
  try {
    const q = await pool.withTemporaryChannel(url, (ch) => ch.checkQueue(queue));
    return { ready: q.messageCount, consumers: q.consumerCount };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface CleanupResult {
  /** Messages still in the replay queue when it was deleted (0 if it was already gone). */
  replayMessagesDiscarded: number;
  deleted: string[];
}

/**
 * Deletes what the migration created: its replay queue (with its binding) and its status
 * queue. Idempotent; needs only the broker URL and the migration uid.
 */
export async function cleanupMigration(
  pool: BrokerPool,
  brokerUrl: string,
  uid: string,
): Promise<CleanupResult> {
  const { replayQueue, statusQueue } = migrationQueues(uid);
  const deleted: string[] = [];
  let replayMessagesDiscarded = 0;
  for (const queue of [replayQueue, statusQueue]) {
    // A lost connection (the broker restarting, a reset) is retried: the queues outlive the
    // migration otherwise.
    await retrying(async () => {
      // Only delete what exists: a delete of a missing queue is a 404 on some broker versions.
      if (!(await queueDepth(pool, brokerUrl, queue))) return;
      const reply = await pool.withTemporaryChannel(brokerUrl, (ch) => ch.deleteQueue(queue));
      if (queue === replayQueue) replayMessagesDiscarded = reply.messageCount;
      deleted.push(queue);
    });
  }
  await pool.release(brokerUrl, uid);
  return { replayMessagesDiscarded, deleted };
}

/** Runs `fn` again after a retriable broker error (lost connection), up to `attempts` times. */
async function retrying(fn: () => Promise<void>, attempts = 5): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (raw) {
      const err = toMs2mError(raw);
      if (!err.retriable || attempt >= attempts) throw err;
      await sleep(backoffDelay(attempt, { initialMs: 200 }));
    }
  }
}
