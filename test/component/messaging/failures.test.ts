import { connect } from "amqplib";
import { afterAll, describe, expect, it } from "vitest";
import { BrokerPool } from "../../../src/messaging/broker-pool.ts";
import { ReplayMigration } from "../../../src/messaging/migration.ts";
import { replayQueueName } from "../../../src/protocol/replay.ts";
import { BROKER_URL, closeAllConnections, deleteBrokerObjects, runMigration, uniqueId } from "./harness.ts";
import { sleep } from "../../../tooling/exec.ts";

const steady = (r: number) => ({
  beforeSetup: r,
  beforeCheckpoint: r,
  duringRestore: r,
  duringReplay: r,
  duringCutover: r,
});

describe("replay protocol under failures", () => {
  const pool = new BrokerPool();
  afterAll(() => pool.close());

  it("survives a broker outage (all connections closed) in the middle of the replay", async () => {
    let backlogAtOutage = 0;
    const out = await runMigration(
      {
        rates: steady(100),
        warmupMs: 300,
        checkpointDelayMs: 100,
        restoreDelayMs: 1500,
        cutoffAfterMs: 60_000,
        targetWorkMs: 2, // the target is still in replay mode, consuming the replay queue
        duringReplay: async () => {
          backlogAtOutage = 1;
          await closeAllConnections();
        },
      },
      pool,
    );
    expect(backlogAtOutage).toBe(1);
    expect(out.report).toMatchObject({ cutoffFired: false, drained: true, messagesLeft: 0 });
    expect(out.accounting.lost).toEqual([]);
    expect(out.accounting.appliedTwice).toEqual([]);
    // Deliveries that were unacknowledged when the connection dropped came back and were skipped or applied once.
    expect(out.targetMetrics.replayed).toBeGreaterThan(0);
  });

  it("a 404 and a 406 in one migration do not disturb another running on the same connection", async () => {
    const running = runMigration(
      {
        rates: steady(120),
        warmupMs: 200,
        checkpointDelayMs: 200,
        restoreDelayMs: 800,
        cutoffAfterMs: 60_000,
      },
      pool,
    );
    await sleep(400);
    const exchange = uniqueId("ms2m.test.ex");
    const missing = new ReplayMigration(pool, {
      uid: uniqueId("bad404"),
      topology: { brokerUrl: BROKER_URL, exchange, primaryQueue: uniqueId("no-such-queue") },
    });
    await expect(missing.setup()).rejects.toMatchObject({ reason: "NotFound", retriable: false });

    // 406: the replay queue name is taken by a queue with other arguments.
    const uid = uniqueId("bad406");
    const primary = uniqueId("ms2m.test.q");
    const conn = await connect(BROKER_URL);
    const ch = await conn.createChannel();
    await ch.assertExchange(exchange, "fanout", { durable: false, autoDelete: false });
    await ch.assertQueue(primary, { durable: false });
    await ch.assertQueue(replayQueueName(uid), { durable: false });
    const conflicting = new ReplayMigration(pool, {
      uid,
      topology: { brokerUrl: BROKER_URL, exchange, primaryQueue: primary },
    });
    await expect(conflicting.setup()).rejects.toMatchObject({ reason: "Invalid", retriable: false });
    await conn.close();

    const out = await running;
    expect(out.accounting.lost).toEqual([]);
    expect(out.accounting.appliedTwice).toEqual([]);
    expect(out.report.drained).toBe(true);
    expect(pool.connectionCount).toBe(1);
    await deleteBrokerObjects([primary, replayQueueName(uid)], [exchange]);
  });
});
