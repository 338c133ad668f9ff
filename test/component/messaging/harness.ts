// Shared pieces of the messaging component tests: unique names, broker housekeeping, and one
// complete in-process migration (source and target reference consumers, real RabbitMQ).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { connect } from "amqplib";
import { BrokerPool } from "../../../src/messaging/broker-pool.ts";
import { decideCutover, type CutoverDecision } from "../../../src/messaging/drain.ts";
import { ReplayMigration, type CutoverReport } from "../../../src/messaging/migration.ts";
import { controlQueueName, replayQueueName } from "../../../src/protocol/replay.ts";
import { account, type AccountingReport } from "../../../workload/accounting.ts";
import { ReferenceConsumer } from "../../../workload/consumer.ts";
import { Producer } from "../../../workload/producer.ts";
import type { SequencedMessage } from "../../../workload/topology.ts";
import { LOCAL_BROKER_URL, queueStats as brokerQueueStats } from "../../../tooling/broker/queues.ts";
import { sleep, waitUntil as waitUntilIn } from "../../../tooling/exec.ts";

export const BROKER_URL = process.env.MS2M_TEST_AMQP_URL ?? LOCAL_BROKER_URL;

export const uniqueId = (prefix: string): string =>
  `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;

/**
 * tooling's `waitUntil` at this suite's pace: every 20 ms, and failing after 15 s (before a test's
 * timeout) with what it waited for.
 */
export const waitUntil: typeof waitUntilIn = (what, check, options = {}) =>
  waitUntilIn(what, check, { timeoutMs: 15_000, intervalMs: 20, ...options });

/** Ready messages and consumers of a queue on this suite's broker, or undefined if it does not exist. */
export const queueStats = (queue: string) => brokerQueueStats(queue, BROKER_URL);

/** Broker-side depth of a queue, or undefined if it does not exist. */
export const readyCount = async (queue: string) => (await queueStats(queue))?.messageCount;

/** Deletes queues and exchanges (missing ones are fine). */
export async function deleteBrokerObjects(queues: string[], exchanges: string[] = []): Promise<void> {
  const conn = await connect(BROKER_URL);
  try {
    for (const q of queues) {
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      await ch.deleteQueue(q).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
    for (const e of exchanges) {
      const ch = await conn.createChannel();
      ch.on("error", () => undefined);
      await ch.deleteExchange(e).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
  } finally {
    await conn.close();
  }
}

/** Takes every message out of a queue and returns the sequence numbers (for exact cutoff checks). */
export async function drainSeqs(queue: string): Promise<number[]> {
  const conn = await connect(BROKER_URL);
  const seqs: number[] = [];
  try {
    const ch = await conn.createChannel();
    for (;;) {
      const msg = await ch.get(queue, { noAck: true });
      if (msg === false) break;
      seqs.push((JSON.parse(msg.content.toString()) as SequencedMessage).seq);
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
  return seqs;
}

/** Simulates a broker outage for every client: the broker closes all connections (320). */
export async function closeAllConnections(): Promise<void> {
  await promisify(execFile)("rabbitmqctl", ["close_all_connections", "ms2m test: simulated broker restart"]);
}

export interface MigrationScenario {
  /** Publish rate per phase, msg/s (0..200). */
  rates: {
    beforeSetup: number;
    beforeCheckpoint: number;
    duringRestore: number;
    duringReplay: number;
    duringCutover: number;
  };
  warmupMs: number;
  checkpointDelayMs: number;
  restoreDelayMs: number;
  /** Replay budget before the cutoff fires. */
  cutoffAfterMs: number;
  /** Busy time per message in the target (slows the replay so the cutoff can fire). */
  targetWorkMs?: number;
  /** Called while the target replays (failure injection). */
  duringReplay?: () => Promise<void>;
  /**
   * Sample the drain status only when the target reports PROGRESS (as the controller does),
   * with the target's heartbeat at this interval; otherwise every 50 ms with a 100 ms heartbeat.
   */
  onReportsWithHeartbeatMs?: number;
}

export interface MigrationOutcome {
  decision: CutoverDecision;
  report: CutoverReport;
  accounting: AccountingReport;
  /** Sequence numbers that were left in the replay queue when the cutoff fired. */
  leftInReplay: number[];
  published: number;
  targetMetrics: ReturnType<ReferenceConsumer["consumer"]["metrics"]>;
  /** From START_REPLAY's answer to the cutover decision. */
  decisionMs: number;
  /** PROGRESS reports the target sent. */
  progressReports: number;
}

/** Runs one whole migration of the reference consumer under a live producer and accounts for every message. */
export async function runMigration(s: MigrationScenario, pool = new BrokerPool()): Promise<MigrationOutcome> {
  const id = uniqueId("mig");
  const exchange = `ms2m.test.ex.${id}`;
  const queue = `ms2m.test.q.${id}`;
  const sourcePod = `src-${id}`;
  const targetPod = `dst-${id}`;
  const ownPool = arguments.length < 2;
  const producer = new Producer({ url: BROKER_URL, exchange, rate: s.rates.beforeSetup, producerId: id });
  const source = new ReferenceConsumer({ url: BROKER_URL, exchange, queue, podName: () => sourcePod });
  let target: ReferenceConsumer | undefined;
  let progressReports = 0;
  let nextReport: (() => void) | undefined;
  const migration = new ReplayMigration(pool, {
    uid: id,
    topology: { brokerUrl: BROKER_URL, exchange, primaryQueue: queue },
    answerTimeoutMs: 20_000,
    onStatus: (status) => {
      if (status.type !== "PROGRESS") return;
      progressReports++;
      nextReport?.();
    },
  });
  const reported = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      nextReport = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  try {
    await source.start();
    await producer.start();
    await sleep(s.warmupMs);

    await migration.setup();
    producer.setRate(s.rates.beforeCheckpoint);
    await migration.fenceSource();
    await sleep(s.checkpointDelayMs);
    const image = await source.checkpoint();

    producer.setRate(s.rates.duringRestore);
    await sleep(s.restoreDelayMs);
    const work = s.targetWorkMs ?? 0;
    target = new ReferenceConsumer({
      url: BROKER_URL,
      exchange,
      queue,
      restoredFrom: image,
      podName: () => targetPod,
      prefetch: work > 0 ? 10 : 100,
      progressIntervalMs: s.onReportsWithHeartbeatMs ?? 100,
    });
    if (work > 0) slowDown(target, work);
    await target.start();

    producer.setRate(s.rates.duringReplay);
    const replayStartedAt = Date.now();
    await migration.startReplay(targetPod);
    const replayAnswered = Date.now();
    await s.duringReplay?.();
    let decision: CutoverDecision;
    for (let first = true; ; first = false) {
      // Like the controller: one sample right after the answer, then one per report.
      if (!first && s.onReportsWithHeartbeatMs !== undefined) await reported(s.onReportsWithHeartbeatMs * 2);
      const status = await migration.drainStatus(targetPod);
      decision = decideCutover(
        status,
        { replayStartedAt, cutoffAfterMs: s.cutoffAfterMs, handoverMaxDepth: 5, handoverBacklogMs: 0 },
        Date.now(),
      );
      if (decision.action !== "wait") break;
      if (s.onReportsWithHeartbeatMs === undefined) await sleep(50);
    }
    const decisionMs = Date.now() - replayAnswered;

    producer.setRate(s.rates.duringCutover);
    const report = await migration.cutover({ sourcePod, targetPod, cutoff: decision.action === "cutoff" });
    const leftInReplay = report.cutoffFired ? await drainSeqs(replayQueueName(id)) : [];

    await sleep(200); // the producer keeps publishing after the switch
    const published = await producer.stop();
    const t = target;
    await waitUntil(
      "target to consume the primary queue",
      async () => (await readyCount(queue)) === 0 && t.consumer.metrics().unacked === 0,
    );
    await source.close();
    await target.close();
    return {
      decision,
      report,
      leftInReplay,
      accounting: account(published, target.state.toJSON()),
      published: published.length,
      targetMetrics: target.consumer.metrics(),
      decisionMs,
      progressReports,
    };
  } finally {
    await producer.stop().catch(() => undefined);
    await source.close().catch(() => undefined);
    await target?.close().catch(() => undefined);
    await migration.cleanup().catch(() => undefined);
    if (ownPool) await pool.close();
    await deleteBrokerObjects([queue, controlQueueName(sourcePod), controlQueueName(targetPod)], [exchange]);
  }
}

/** Makes the target's handler spend `ms` per message (synchronously, like real CPU work). */
function slowDown(target: ReferenceConsumer, ms: number): void {
  const apply = target.state.apply.bind(target.state);
  target.state.apply = (seq: number) => {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // busy: the replay rate is what is being limited
    }
    apply(seq);
  };
}
