// Under CRIU a restored consumer is the same process: same memory, the source pod's environment,
// and a broker connection that died on restore (tcp-close). The SDK must see the move by itself,
// from its pod identity (here a temp file standing for the Downward API volume): no more primary
// queue, START_REPLAY on the new pod's control queue, the dedup window kept. A connection dropped
// by a TCP relay stands for the restore's dead socket.
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import amqp from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerPool } from "../../../src/messaging/broker-pool.ts";
import { ReplayMigration } from "../../../src/messaging/migration.ts";
import { MigratingConsumer, type RestoreInfo } from "../../../src/sdk/consumer.ts";
import { isMigrationTargetPod, readPodIdentity } from "../../../src/sdk/pod-identity.ts";
import { controlQueueName } from "../../../src/protocol/replay.ts";
import { declareWorkloadTopology, messageId, type SequencedMessage } from "../../../workload/topology.ts";
import { TcpRelay } from "../../../tooling/broker/relay.ts";
import { freePort, sleep } from "../../../tooling/exec.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";
import { BROKER_URL, deleteBrokerObjects, queueStats, uniqueId, waitUntil } from "./harness.ts";

let relay: TcpRelay;
let admin: amqp.ChannelModel;
let publisher: amqp.ConfirmChannel;
const pool = new BrokerPool();
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  relay = await TcpRelay.start(
    { host: "127.0.0.1", port: await freePort() },
    { host: "127.0.0.1", port: 5672 },
  );
  admin = await amqp.connect(BROKER_URL);
  publisher = await admin.createConfirmChannel();
});

afterAll(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  await pool.close();
  await admin?.close().catch(() => undefined);
  await relay?.stop();
});

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** One consumer "pod" with its own exchange, primary queue and Downward API folder. */
async function scenario(podName: string, uid?: string, labels?: string) {
  const id = uniqueId("restore");
  const exchange = `ms2m.test.ex.${id}`;
  const queue = `ms2m.test.q.${id}`;
  const podinfo = tempDir("podinfo");
  // Replaced atomically, as the kubelet's atomic writer does.
  const writePodinfo = (item: "name" | "uid", value: string) => {
    writeFileSync(join(podinfo, `.${item}.tmp`), value);
    renameSync(join(podinfo, `.${item}.tmp`), join(podinfo, item));
  };
  writePodinfo("name", podName);
  if (uid) writePodinfo("uid", uid);
  if (labels) writeFileSync(join(podinfo, "labels"), labels);

  const applied: number[] = [];
  const restores: RestoreInfo[] = [];
  let setups = 0;
  let hold: { from: number; gate: Promise<void> } | undefined;
  const consumer = new MigratingConsumer({
    url: `amqp://guest:guest@127.0.0.1:${relay.port}`,
    queue,
    podIdentity: () => readPodIdentity({ MS2M_POD_NAME_FILE: join(podinfo, "name"), POD_NAME: podName }),
    inMigrationTarget: () => isMigrationTargetPod({ MS2M_POD_NAME_FILE: join(podinfo, "name") }),
    reconnect: { initialMs: 50, maxMs: 200 },
    progressIntervalMs: 100,
    setup: async (ch) => {
      setups++;
      await declareWorkloadTopology(ch, exchange, queue);
    },
    handler: async (msg) => {
      const { seq } = JSON.parse(msg.content.toString("utf8")) as SequencedMessage;
      if (hold && seq >= hold.from) await hold.gate;
      applied.push(seq);
    },
    onRestored: (info) => {
      restores.push(info);
    },
  });
  const pods = new Set([podName]);
  cleanups.push(async () => {
    await consumer.close();
    await deleteBrokerObjects([queue, ...[...pods].map(controlQueueName)], [exchange]);
    await removeTempDir(podinfo);
  });

  const publish = async (seqs: number[]) => {
    for (const seq of seqs) {
      const body: SequencedMessage = { seq, producer: id, at: Date.now() };
      publisher.publish(exchange, "", Buffer.from(JSON.stringify(body)), {
        persistent: true,
        messageId: messageId(id, seq),
      });
    }
    await publisher.waitForConfirms();
  };
  /** Holds every message from `from` on in the handler until the returned function is called. */
  const holdFrom = (from: number): (() => void) => {
    let release!: () => void;
    hold = { from, gate: new Promise<void>((resolve) => (release = resolve)) };
    return () => {
      hold = undefined;
      release();
    };
  };
  const restoreInto = async (name: string, newUid?: string) => {
    // Acks of what was applied reach the broker first (the relay's sockets delay small writes).
    await sleep(200);
    pods.add(name);
    writePodinfo("name", name);
    if (newUid) writePodinfo("uid", newUid);
    relay.dropConnections();
  };
  return {
    id,
    exchange,
    queue,
    consumer,
    applied,
    restores,
    setups: () => setups,
    publish,
    holdFrom,
    restoreInto,
  };
}

describe("restore detection by the pod identity", () => {
  it(
    "a consumer restored into another pod stops consuming the primary queue, replays on START_REPLAY with its dedup window and resumes after END_REPLAY",
    { timeout: 60_000 },
    async () => {
      const source = `src-${uniqueId("p")}`;
      const target = `${source}-ms2m-1`;
      const s = await scenario(source);
      const migration = new ReplayMigration(pool, {
        uid: s.id,
        topology: { brokerUrl: BROKER_URL, exchange: s.exchange, primaryQueue: s.queue },
        answerTimeoutMs: 15_000,
      });
      cleanups.push(async () => void (await migration.cleanup()));

      await s.consumer.start();
      expect(s.consumer.podName).toBe(source);
      await s.publish(range(1, 10));
      await waitUntil("1..10 applied", () => s.applied.length === 10);
      await migration.setup();
      expect((await migration.fenceSource()).pod).toBe(source);

      // 15.. stay in the work chain while the "restore" happens: delivered on the old channel.
      const release = s.holdFrom(15);
      await s.publish(range(11, 20));
      await waitUntil(
        "11..14 applied, 15..20 held",
        () => s.applied.length === 14 && s.consumer.metrics().unacked === 6,
      );
      await s.restoreInto(target);
      await sleep(500);
      // The restore is handled after what the chain holds: nothing in the new pod yet.
      expect(s.restores).toEqual([]);
      expect((await queueStats(controlQueueName(target)))?.consumerCount ?? 0).toBe(0);
      release();

      await waitUntil("restored", () => s.restores.length === 1 && s.consumer.podName === target);
      await waitUntil(
        "listening on the new control queue",
        async () => (await queueStats(controlQueueName(target)))?.consumerCount === 1,
      );
      expect(s.restores).toEqual([{ previousPod: source, pod: target }]);
      expect(s.consumer.mode).toBe("awaiting-replay");
      // The held deliveries were applied (their acks went to a dead channel, without a throw).
      expect(s.applied).toEqual(range(1, 20));
      // Counters are per pod, as for a process the simulator starts from a snapshot.
      expect(s.consumer.metrics()).toEqual({ processed: 0, replayed: 0, duplicatesSkipped: 0, unacked: 0 });

      await s.publish(range(21, 30));
      await sleep(500);
      // Nothing taken from the primary queue: 15..20 came back from the dead connection, 21..30 wait.
      expect(await queueStats(s.queue)).toEqual({ messageCount: 16, consumerCount: 0 });
      expect(s.applied).toHaveLength(20);

      const started = await migration.startReplay(target);
      expect(started.pod).toBe(target);
      // What the controller verifies: this process is the one checkpointed in the source pod.
      expect(started.restoredFrom).toEqual({ pod: source });
      // The replay queue holds 11..30: 11..20 are in the state already (dedup window kept).
      await waitUntil("replay applied", () => {
        const m = s.consumer.metrics();
        return m.replayed === 10 && m.duplicatesSkipped === 10;
      });
      expect(s.applied).toEqual(range(1, 30));

      const report = await migration.cutover({ targetPod: target, sourceGone: true });
      expect(report).toMatchObject({ drained: true, replayed: 10, duplicatesSkipped: 10, messagesLeft: 0 });
      expect(s.consumer.mode).toBe("primary");
      await waitUntil("primary queue consumed again", async () => {
        const q = await queueStats(s.queue);
        return (
          q?.consumerCount === 1 && q.messageCount === 0 && s.consumer.metrics().duplicatesSkipped === 26
        );
      });
      await s.publish(range(31, 35));
      await waitUntil("31..35 applied", () => s.applied.length === 35);
      expect(s.applied).toEqual(range(1, 35));
      expect(s.restores).toHaveLength(1);
    },
  );

  it("a plain reconnect under the same identity resumes the primary queue (no false restore)", async () => {
    const pod = `same-${uniqueId("p")}`;
    const s = await scenario(pod, "uid-1");
    await s.consumer.start();
    await s.publish(range(1, 5));
    await waitUntil("1..5 applied", () => s.applied.length === 5);
    const setups = s.setups();
    await s.restoreInto(pod); // same name, same uid: only the connection is lost
    await waitUntil("reconnected", async () => {
      const q = await queueStats(s.queue);
      return s.setups() > setups && q?.consumerCount === 1;
    });
    await s.publish(range(6, 10));
    await waitUntil("6..10 applied", () => s.applied.length === 10);
    expect(s.applied).toEqual(range(1, 10));
    expect(s.restores).toEqual([]);
    expect(s.consumer.mode).toBe("primary");
    expect(s.consumer.metrics()).toMatchObject({ processed: 10, duplicatesSkipped: 0 });
  });

  it("the same pod name with a new uid (a StatefulSet pod restored under its name) is a restore", async () => {
    const pod = `web-0-${uniqueId("p")}`;
    const s = await scenario(pod, "uid-1");
    await s.consumer.start();
    await s.publish(range(1, 3));
    await waitUntil("1..3 applied", () => s.applied.length === 3);
    await s.restoreInto(pod, "uid-2");
    await waitUntil("restored", () => s.restores.length === 1);
    await waitUntil(
      "listening on its control queue again",
      async () => (await queueStats(controlQueueName(pod)))?.consumerCount === 1,
    );
    expect(s.restores).toEqual([{ previousPod: pod, pod }]);
    expect(s.consumer.mode).toBe("awaiting-replay");
    await s.publish(range(4, 5));
    await sleep(300);
    expect(await queueStats(s.queue)).toEqual({ messageCount: 2, consumerCount: 0 });
    expect(s.applied).toEqual(range(1, 3));
  });

  it("a process that starts fresh in a migration's target pod waits for the controller and reports no restore", async () => {
    const target = `cold-${uniqueId("p")}-ms2m-1`;
    const s = await scenario(target, "uid-t", 'app="orders"\nmigration.ms2m.io/role="target"\n');
    const migration = new ReplayMigration(pool, {
      uid: s.id,
      topology: { brokerUrl: BROKER_URL, exchange: s.exchange, primaryQueue: s.queue },
      answerTimeoutMs: 15_000,
    });
    cleanups.push(async () => void (await migration.cleanup()));
    await s.consumer.start(); // declares the workload's topology
    expect(s.consumer.mode).toBe("awaiting-replay");
    await migration.setup();
    await s.publish(range(1, 4));
    await sleep(300);
    // Not taken from the primary queue: the source (or the controller's decision) owns them.
    expect(await queueStats(s.queue)).toEqual({ messageCount: 4, consumerCount: 0 });
    expect(s.applied).toEqual([]);
    const started = await migration.startReplay(target);
    expect(started.pod).toBe(target);
    expect(started.restoredFrom).toBeUndefined();
  });
});
