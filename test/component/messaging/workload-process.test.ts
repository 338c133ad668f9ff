// The reference workload as real processes under the simulated checkpoint/restore contract:
// checkpoint over the unix socket, restore from the file with the *source's* HOSTNAME, and the
// accounting CLI on the producer log and the target's final state.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BrokerPool } from "../../../src/messaging/broker-pool.ts";
import { decideCutover } from "../../../src/messaging/drain.ts";
import { ReplayMigration } from "../../../src/messaging/migration.ts";
import { controlQueueName } from "../../../src/sdk/protocol.ts";
import { Producer } from "../../../workload/producer.ts";
import { BROKER_URL, deleteBrokerObjects, readyCount, sleep, uniqueId, waitFor } from "./harness.ts";

const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));

function startConsumer(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ["workload/consumer.ts"], {
    env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "warn", AMQP_URL: BROKER_URL, ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(child);
  return child;
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
      const dir = mkdtempSync(join(tmpdir(), "ms2m-proc-"));
      const exchange = `ms2m.test.ex.${id}`;
      const queue = `ms2m.test.q.${id}`;
      const [sourcePod, targetPod] = [`src-${id}`, `dst-${id}`];
      writeFileSync(join(dir, "source-name"), sourcePod);
      writeFileSync(join(dir, "target-name"), targetPod);
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
        });
        await waitFor("source socket", () => existsSync(join(dir, "source.sock")));
        await waitFor("source queue", async () => (await readyCount(queue)) !== undefined);
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
          STATE_FILE: join(dir, "target-state.json"),
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
        await waitFor("primary queue consumed", async () => (await readyCount(queue)) === 0);
        await sleep(200);
        expect(await stop(source)).toBe(0);
        expect(await stop(target)).toBe(0);

        const accounting = spawn(process.execPath, [
          "workload/accounting.ts",
          logFile,
          join(dir, "target-state.json"),
        ]);
        let out = "";
        accounting.stdout.on("data", (c: Buffer) => (out += c.toString()));
        const code = await new Promise<number | null>((resolve) => accounting.once("exit", resolve));
        const parsed = JSON.parse(out) as { lost: number; appliedTwice: number; published: number };
        expect(parsed).toMatchObject({ lost: 0, appliedTwice: 0 });
        expect(parsed.published).toBeGreaterThan(50);
        expect(code).toBe(0);
        expect(JSON.parse(readFileSync(join(dir, "target-state.json"), "utf8"))).toMatchObject({ queue });
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
});
