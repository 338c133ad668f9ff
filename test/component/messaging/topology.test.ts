import { connect } from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { BrokerPool } from "../../../src/messaging/broker-pool.ts";
import { sendControl } from "../../../src/messaging/control.ts";
import { StatusInbox } from "../../../src/messaging/status-inbox.ts";
import {
  cleanupMigration,
  queueDepth,
  replayTopologySchema,
  setupReplay,
} from "../../../src/messaging/topology.ts";
import { MigratingConsumer } from "../../../src/sdk/consumer.ts";
import { controlQueueName, replayQueueName, statusQueueName } from "../../../src/protocol/replay.ts";
import { BROKER_URL, deleteBrokerObjects, readyCount, uniqueId, waitUntil } from "./harness.ts";

const garbage: { queues: string[]; exchanges: string[] } = { queues: [], exchanges: [] };
afterEach(async () => {
  await deleteBrokerObjects(garbage.queues.splice(0), garbage.exchanges.splice(0));
});

async function workload(exchange: string | undefined, queue: string, routingKey = "") {
  const conn = await connect(BROKER_URL);
  const ch = await conn.createConfirmChannel();
  if (exchange) {
    await ch.assertExchange(exchange, "fanout", { durable: true });
    garbage.exchanges.push(exchange);
  }
  await ch.assertQueue(queue, { durable: true });
  if (exchange) await ch.bindQueue(queue, exchange, routingKey);
  garbage.queues.push(queue);
  return {
    publish: async (ex: string, n: number) => {
      for (let i = 0; i < n; i++) ch.publish(ex, "", Buffer.from(String(i)), { messageId: `m${i}` });
      await ch.waitForConfirms();
    },
    close: () => conn.close(),
  };
}

describe("replay topology", () => {
  it("binds a replay queue that receives every message published after setup; idempotent", async () => {
    const pool = new BrokerPool();
    const uid = uniqueId("topo");
    const exchange = uniqueId("ms2m.test.ex");
    const primaryQueue = uniqueId("ms2m.test.q");
    garbage.queues.push(replayQueueName(uid), statusQueueName(uid));
    const w = await workload(exchange, primaryQueue);
    await w.publish(exchange, 3); // before setup: primary only
    const topology = replayTopologySchema.parse({ brokerUrl: BROKER_URL, exchange, primaryQueue });
    const first = await setupReplay(pool, uid, topology);
    expect(first).toMatchObject({
      exchangeDeclared: false,
      primaryBacklog: 3,
      replayQueue: replayQueueName(uid),
    });
    await setupReplay(pool, uid, topology); // again: no error, nothing duplicated
    await w.publish(exchange, 5);
    await waitUntil("copies", async () => (await readyCount(replayQueueName(uid))) === 5);
    expect(await readyCount(primaryQueue)).toBe(8);
    await w.close();
    await pool.close();
  });

  it("declares the exchange if the workload did not, and refuses a missing primary queue", async () => {
    const pool = new BrokerPool();
    const uid = uniqueId("topo");
    const exchange = uniqueId("ms2m.test.ex");
    const primaryQueue = uniqueId("ms2m.test.q");
    garbage.queues.push(replayQueueName(uid), statusQueueName(uid));
    garbage.exchanges.push(exchange);
    const missing = replayTopologySchema.parse({ brokerUrl: BROKER_URL, exchange, primaryQueue });
    await expect(setupReplay(pool, uid, missing)).rejects.toMatchObject({ reason: "NotFound" });
    const w = await workload(undefined, primaryQueue);
    const result = await setupReplay(pool, uid, missing);
    expect(result.exchangeDeclared).toBe(true);
    await w.close();
    await pool.close();
  });

  it("cleans up after a controller crash from the migration uid alone, and only what it created", async () => {
    const uid = uniqueId("crash");
    const exchange = uniqueId("ms2m.test.ex");
    const primaryQueue = uniqueId("ms2m.test.q");
    const w = await workload(exchange, primaryQueue);
    const crashed = new BrokerPool();
    await setupReplay(
      crashed,
      uid,
      replayTopologySchema.parse({ brokerUrl: BROKER_URL, exchange, primaryQueue }),
    );
    await w.publish(exchange, 4);
    await crashed.close(); // the controller dies: nothing in memory survives

    const restarted = new BrokerPool();
    const result = await cleanupMigration(restarted, BROKER_URL, uid);
    expect(result).toEqual({
      replayMessagesDiscarded: 4,
      deleted: [replayQueueName(uid), statusQueueName(uid)],
    });
    expect(await queueDepth(restarted, BROKER_URL, replayQueueName(uid))).toBeUndefined();
    // The workload's queue, exchange and binding are untouched.
    await w.publish(exchange, 1);
    await waitUntil("primary still bound", async () => (await readyCount(primaryQueue)) === 5);
    // Idempotent.
    expect(await cleanupMigration(restarted, BROKER_URL, uid)).toEqual({
      replayMessagesDiscarded: 0,
      deleted: [],
    });
    await w.close();
    await restarted.close();
  });

  it("a control message sent before the pod runs waits for it; a resend is answered again, not acted on twice", async () => {
    const pool = new BrokerPool();
    const uid = uniqueId("ctl");
    const exchange = uniqueId("ms2m.test.ex");
    const primaryQueue = uniqueId("ms2m.test.q");
    const pod = uniqueId("pod");
    const w = await workload(exchange, primaryQueue);
    await setupReplay(
      pool,
      uid,
      replayTopologySchema.parse({ brokerUrl: BROKER_URL, exchange, primaryQueue }),
    );
    garbage.queues.push(replayQueueName(uid), statusQueueName(uid), controlQueueName(pod));
    // Sent before the pod runs: waits in its control queue.
    const id = await sendControl(pool, BROKER_URL, uid, pod, {
      type: "START_REPLAY",
      replayQueue: replayQueueName(uid),
    });
    const applied: string[] = [];
    const consumer = new MigratingConsumer({
      url: BROKER_URL,
      queue: primaryQueue,
      restored: { dedup: [] },
      podName: () => pod,
      handler: (m) => void applied.push(m.properties.messageId as string),
    });
    await consumer.start();
    const inbox = new StatusInbox(pool, BROKER_URL, uid);
    const first = await inbox.await(pod, "REPLAY_STARTED", id, 5000);
    expect(consumer.mode).toBe("replay");
    await sendControl(pool, BROKER_URL, uid, pod, {
      type: "START_REPLAY",
      replayQueue: replayQueueName(uid),
    });
    await waitUntil("second answer", async () => {
      await inbox.poll();
      return (inbox.latest(pod, "REPLAY_STARTED")?.at ?? 0) > first.at;
    });
    await w.publish(exchange, 3);
    await waitUntil("replayed", () => applied.length === 3);
    expect(consumer.metrics()).toMatchObject({ replayed: 3, processed: 3 });
    await consumer.close();
    await w.close();
    await pool.close();
  });

  it("never logs or reports the broker credentials", async () => {
    const lines: string[] = [];
    const { pino } = await import("pino");
    const logger = pino({ level: "trace" }, { write: (l: string) => void lines.push(l) });
    const pool = new BrokerPool({ logger, connectAttempts: 2, reconnect: { initialMs: 10 } });
    const url = "amqp://guest:s3cret-pw@127.0.0.1:5672";
    const err = await setupReplay(
      pool,
      uniqueId("cred"),
      replayTopologySchema.parse({ brokerUrl: url, exchange: "x", primaryQueue: "y" }),
    ).then(
      () => new Error("setup unexpectedly succeeded"),
      (e: unknown) => e as Error,
    );
    expect(err).toMatchObject({ reason: "ServiceUnavailable" });
    expect(`${err.message} ${lines.join("")}`).not.toContain("s3cret-pw");
    await pool.close();
  });
});
