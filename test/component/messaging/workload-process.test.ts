// The reference workload as real processes, under both runtimes' contracts:
//  - the simulator's: checkpoint over the unix socket, restore from the file with the *source's*
//    HOSTNAME;
//  - CRIU's, in place: the same process, its pod identity file rewritten and its broker
//    connection dropped (a TCP relay), with the source's HOSTNAME and POD_NAME still in its env;
// and the accounting CLI on the producer log and the final state the consumer dumped per pod.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFinished, type TestContext } from "vitest";
import { BrokerPool } from "../../../src/messaging/broker-pool.ts";
import { decideCutover } from "../../../src/messaging/drain.ts";
import { ReplayMigration } from "../../../src/messaging/migration.ts";
import { controlQueueName } from "../../../src/protocol/replay.ts";
import { Producer } from "../../../workload/producer.ts";
import { TcpRelay } from "../../../tooling/broker/relay.ts";
import { freePort, sleep } from "../../../tooling/exec.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";
import { BROKER_URL, deleteBrokerObjects, readyCount, uniqueId, waitUntil } from "./harness.ts";

const children: ChildProcess[] = [];

/** The test's folder (the processes' files and logs), removed when it passes, kept when it fails. */
function testDir(prefix: string): string {
  const dir = tempDir(prefix);
  onTestFinished(({ task }: TestContext) => removeTempDir(dir, { keep: task.result?.state === "fail" }));
  return dir;
}
afterAll(() => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));

/** The consumer as a process; its log lines (pino JSON) are collected in `lines`. */
function startConsumer(env: Record<string, string>): ChildProcess & { lines: Record<string, unknown>[] } {
  const child = spawn(process.execPath, ["workload/consumer.ts"], {
    env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "info", AMQP_URL: BROKER_URL, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: Record<string, unknown>[] = [];
  let rest = "";
  child.stdout.on("data", (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split("\n");
    rest = parts.pop() ?? "";
    for (const line of parts) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  children.push(child);
  return Object.assign(child, { lines });
}

const logged = (c: { lines: Record<string, unknown>[] }, msg: string) => c.lines.filter((l) => l.msg === msg);

/** Sequence numbers in an applied log ("<epoch ms> <seq>" per line). */
const appliedSeqs = (path: string): number[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      expect(line).toMatch(/^\d{13} \d+$/);
      return Number(line.split(" ")[1]);
    });

/** Runs the accounting CLI on a producer log and a state dump. */
async function accountingOf(producerLog: string, state: string) {
  const accounting = spawn(process.execPath, ["workload/accounting.ts", producerLog, state]);
  let out = "";
  accounting.stdout.on("data", (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => accounting.once("exit", resolve));
  return { code, ...(JSON.parse(out) as { lost: number; appliedTwice: number; published: number }) };
}

const checkpoint = (socketPath: string) =>
  new Promise<Buffer>((resolve, reject) => {
    const req = request({ socketPath, method: "POST", path: "/checkpoint" }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${res.statusCode}`)),
      );
    });
    req.on("error", reject);
    req.end();
  });

const stop = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.kill("SIGTERM");
  });

describe("reference workload processes", () => {
  it(
    "migrates a consumer process through checkpoint socket and restore file with zero loss",
    { timeout: 60_000 },
    async () => {
      const id = uniqueId("proc");
      const dir = testDir("proc");
      const exchange = `ms2m.test.ex.${id}`;
      const queue = `ms2m.test.q.${id}`;
      const [sourcePod, targetPod] = [`src-${id}`, `dst-${id}`];
      writeFileSync(join(dir, "source-name"), sourcePod);
      writeFileSync(join(dir, "target-name"), targetPod);
      const [stateDir, appliedDir] = [join(dir, "state"), join(dir, "applied")];
      mkdirSync(stateDir);
      mkdirSync(appliedDir);
      const pool = new BrokerPool();
      const migration = new ReplayMigration(pool, {
        uid: id,
        topology: { brokerUrl: BROKER_URL, exchange, primaryQueue: queue },
      });
      const logFile = join(dir, "producer.log");
      const producer = new Producer({
        url: BROKER_URL,
        exchange,
        rate: 80,
        producerId: id,
        onConfirmed: (seq) => writeFileSync(logFile, `${seq}\n`, { flag: "a" }),
      });
      try {
        const source = startConsumer({
          EXCHANGE: exchange,
          QUEUE: queue,
          HOSTNAME: sourcePod,
          MS2M_POD_NAME_FILE: join(dir, "source-name"),
          MS2M_CHECKPOINT_SOCKET: join(dir, "source.sock"),
          STATE_DIR: stateDir,
          APPLIED_LOG_DIR: appliedDir,
        });
        await waitUntil("source socket", () => existsSync(join(dir, "source.sock")));
        await waitUntil("source queue", async () => (await readyCount(queue)) !== undefined);
        await producer.start();
        await sleep(300);
        await migration.setup();
        await migration.fenceSource();
        writeFileSync(join(dir, "image"), await checkpoint(join(dir, "source.sock")));
        await sleep(500);

        const target = startConsumer({
          EXCHANGE: exchange,
          QUEUE: "not-used-the-queue-comes-from-the-checkpoint",
          HOSTNAME: sourcePod, // CRIU keeps the source's UTS namespace
          MS2M_POD_NAME_FILE: join(dir, "target-name"),
          MS2M_RESTORE_FROM: join(dir, "image"),
          MS2M_CHECKPOINT_SOCKET: join(dir, "target.sock"),
          STATE_FILE: join(dir, "target-state.json"), // the fixed path, as before
          STATE_DIR: stateDir,
          APPLIED_LOG_DIR: appliedDir,
        });
        const replayStartedAt = Date.now();
        await migration.startReplay(targetPod);
        for (;;) {
          const status = await migration.drainStatus(targetPod);
          if (decideCutover(status, { replayStartedAt, cutoffAfterMs: 30_000 }, Date.now()).action !== "wait")
            break;
          await sleep(50);
        }
        const report = await migration.cutover({ sourcePod, targetPod });
        expect(report).toMatchObject({ drained: true, cutoffFired: false, messagesLeft: 0 });
        await sleep(200);
        await producer.stop();
        await waitUntil("primary queue consumed", async () => (await readyCount(queue)) === 0);
        await sleep(200);
        expect(await stop(source)).toBe(0);
        expect(await stop(target)).toBe(0);

        const parsed = await accountingOf(logFile, join(dir, "target-state.json"));
        expect(parsed).toMatchObject({ lost: 0, appliedTwice: 0, code: 0 });
        expect(parsed.published).toBeGreaterThan(50);
        expect(JSON.parse(readFileSync(join(dir, "target-state.json"), "utf8"))).toMatchObject({ queue });
        // Per pod: each process dumped its state under its own pod name.
        expect(readFileSync(join(stateDir, `${targetPod}.json`), "utf8")).toBe(
          readFileSync(join(dir, "target-state.json"), "utf8"),
        );
        expect(existsSync(join(stateDir, `${sourcePod}.json`))).toBe(true);
        expect(appliedSeqs(join(appliedDir, `${sourcePod}.applied`)).length).toBeGreaterThan(0);
        const targetSeqs = appliedSeqs(join(appliedDir, `${targetPod}.applied`));
        expect(new Set(targetSeqs).size).toBe(targetSeqs.length);
        // The simulator's restored process learns its move from the snapshot: the same hook.
        expect(logged(target, "consumer restored")).toEqual([
          expect.objectContaining({ previousPod: sourcePod, pod: targetPod }),
        ]);
      } finally {
        await producer.stop().catch(() => undefined);
        await migration.cleanup().catch(() => undefined);
        await pool.close();
        await deleteBrokerObjects(
          [queue, controlQueueName(sourcePod), controlQueueName(targetPod)],
          [exchange],
        );
      }
    },
  );
  it(
    "a consumer process restored in place (CRIU: same process, new pod identity, dead connection) replays and writes its files under the new pod name",
    { timeout: 60_000 },
    async () => {
      const id = uniqueId("criu");
      const dir = testDir("criu");
      const exchange = `ms2m.test.ex.${id}`;
      const queue = `ms2m.test.q.${id}`;
      const [sourcePod, targetPod] = [`src-${id}`, `src-${id}-ms2m-1`];
      const podinfo = join(dir, "podinfo");
      const stateDir = join(dir, "state");
      const appliedDir = join(dir, "applied");
      for (const d of [podinfo, stateDir, appliedDir]) mkdirSync(d);
      const setPodName = (name: string) => {
        writeFileSync(join(podinfo, ".name.tmp"), name);
        renameSync(join(podinfo, ".name.tmp"), join(podinfo, "name"));
      };
      setPodName(sourcePod);
      const relay = await TcpRelay.start(
        { host: "127.0.0.1", port: await freePort() },
        { host: "127.0.0.1", port: 5672 },
      );
      const pool = new BrokerPool();
      const migration = new ReplayMigration(pool, {
        uid: id,
        topology: { brokerUrl: BROKER_URL, exchange, primaryQueue: queue },
      });
      const logFile = join(dir, "producer.log");
      const producer = new Producer({
        url: BROKER_URL,
        exchange,
        rate: 80,
        producerId: id,
        onConfirmed: (seq) => writeFileSync(logFile, `${seq}\n`, { flag: "a" }),
      });
      try {
        const consumer = startConsumer({
          AMQP_URL: `amqp://guest:guest@127.0.0.1:${relay.port}`,
          EXCHANGE: exchange,
          QUEUE: queue,
          // What a restored process inherits from the source: never to be trusted.
          HOSTNAME: sourcePod,
          POD_NAME: sourcePod,
          MS2M_POD_NAME_FILE: join(podinfo, "name"),
          STATE_DIR: stateDir,
          APPLIED_LOG_DIR: appliedDir,
        });
        await waitUntil("consumer started", () => logged(consumer, "consumer started").length === 1);
        await producer.start();
        await sleep(300);
        await migration.setup();
        expect((await migration.fenceSource()).pod).toBe(sourcePod);
        await sleep(300);

        // The restore: the new pod's Downward API file, and the old connection is dead.
        setPodName(targetPod);
        relay.dropConnections();
        const replayStartedAt = Date.now();
        expect((await migration.startReplay(targetPod)).pod).toBe(targetPod);
        for (;;) {
          const status = await migration.drainStatus(targetPod);
          if (decideCutover(status, { replayStartedAt, cutoffAfterMs: 30_000 }, Date.now()).action !== "wait")
            break;
          await sleep(50);
        }
        const report = await migration.cutover({ targetPod, sourceGone: true });
        expect(report).toMatchObject({ drained: true, cutoffFired: false, messagesLeft: 0 });
        await sleep(200);
        await producer.stop();
        await waitUntil("primary queue consumed", async () => (await readyCount(queue)) === 0);
        await sleep(200);
        expect(await stop(consumer)).toBe(0);

        expect(logged(consumer, "consumer restored")).toEqual([
          expect.objectContaining({ previousPod: sourcePod, pod: targetPod }),
        ]);
        // The state dump is named after the pod the process ran in at shutdown.
        expect(existsSync(join(stateDir, `${sourcePod}.json`))).toBe(false);
        const parsed = await accountingOf(logFile, join(stateDir, `${targetPod}.json`));
        expect(parsed).toMatchObject({ lost: 0, appliedTwice: 0, code: 0 });
        expect(parsed.published).toBeGreaterThan(50);
        // The applied log switched files at the restore: every message in exactly one of them.
        const before = appliedSeqs(join(appliedDir, `${sourcePod}.applied`));
        const after = appliedSeqs(join(appliedDir, `${targetPod}.applied`));
        expect(before.length).toBeGreaterThan(0);
        expect(after.length).toBeGreaterThan(0);
        const published = readFileSync(logFile, "utf8").split("\n").filter(Boolean).map(Number);
        expect([...before, ...after].sort((a, b) => a - b)).toEqual([...published].sort((a, b) => a - b));
      } finally {
        await producer.stop().catch(() => undefined);
        await migration.cleanup().catch(() => undefined);
        await pool.close();
        await relay.stop();
        await deleteBrokerObjects(
          [queue, controlQueueName(sourcePod), controlQueueName(targetPod)],
          [exchange],
        );
      }
    },
  );
});
