import { mkdtempSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../../src/common/backoff.ts";
import { DedupWindow } from "../../../src/sdk/dedup.ts";
import {
  controlMessageId,
  controlMessageSchema,
  controlQueueName,
  replayQueueName,
  statusMessageSchema,
} from "../../../src/protocol/replay.ts";
import { loadRestoredState, serveCheckpoints } from "../../../src/sdk/simulated-runtime.ts";

describe("DedupWindow", () => {
  it("remembers keys, forgets the oldest beyond capacity, and round-trips through a snapshot", () => {
    const w = new DedupWindow(3, ["a", "b"]);
    w.add("c");
    w.add("a"); // already present: does not refresh or duplicate
    expect(w.snapshot()).toEqual(["a", "b", "c"]);
    w.add("d");
    expect(w.has("a")).toBe(false);
    expect(new DedupWindow(3, w.snapshot()).snapshot()).toEqual(["b", "c", "d"]);
  });

  it("never holds more than capacity and always holds the latest keys (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.string({ maxLength: 3 }), { maxLength: 100 }),
        (cap, keys) => {
          const w = new DedupWindow(cap);
          for (const k of keys) w.add(k);
          expect(w.size).toBeLessThanOrEqual(cap);
          if (keys.length) expect(w.has(keys[keys.length - 1]!)).toBe(true);
        },
      ),
    );
  });

  it("rejects a non-positive capacity", () => {
    expect(() => new DedupWindow(0)).toThrow(RangeError);
  });
});

describe("backoffDelay", () => {
  it("grows exponentially, is capped, and jitter only shortens", () => {
    expect(backoffDelay(1, { initialMs: 100, jitter: 0 })).toBe(100);
    expect(backoffDelay(4, { initialMs: 100, jitter: 0 })).toBe(800);
    expect(backoffDelay(30, { initialMs: 100, maxMs: 5000, jitter: 0 })).toBe(5000);
    expect(backoffDelay(1, { initialMs: 100, jitter: 0.5 }, () => 1)).toBe(50);
  });
});

describe("protocol", () => {
  it("names queues from pod and migration identity", () => {
    expect(controlQueueName("web-0")).toBe("ms2m.control.web-0");
    expect(replayQueueName("uid-1")).toBe("ms2m.replay.uid-1");
    expect(controlMessageId("uid-1", "END_REPLAY")).toBe("uid-1:END_REPLAY");
  });

  it("parses control messages and defaults cutoff to false", () => {
    const m = controlMessageSchema.parse({
      type: "END_REPLAY",
      migration: "u",
      replyTo: "s",
      replayQueue: "r",
    });
    expect(m).toEqual({ type: "END_REPLAY", migration: "u", replyTo: "s", replayQueue: "r", cutoff: false });
    expect(
      controlMessageSchema.safeParse({ type: "START_REPLAY", migration: "u", replyTo: "s" }).success,
    ).toBe(false);
    expect(controlMessageSchema.safeParse({ type: "REBOOT", migration: "u", replyTo: "s" }).success).toBe(
      false,
    );
  });

  it("validates status messages", () => {
    const counters = { processed: 1, replayed: 0, duplicatesSkipped: 0, unacked: 0 };
    expect(
      statusMessageSchema.safeParse({ type: "STOPPED", migration: "u", pod: "p", at: 1, counters }).success,
    ).toBe(true);
    expect(statusMessageSchema.safeParse({ type: "STOPPED", migration: "u", pod: "p", at: 1 }).success).toBe(
      false,
    );
  });
});

describe("simulated runtime: checkpoint contract helpers", () => {
  it("serves POST /checkpoint on a unix socket with the state bytes; 404 otherwise", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ms2m-ckpt-"));
    const socketPath = join(dir, "ckpt.sock");
    const server = await serveCheckpoints(() => Buffer.from("state-42"), socketPath);
    const call = (method: string, path: string) =>
      new Promise<{ status: number; body: string; type?: string }>((resolve, reject) => {
        const req = request({ socketPath, method, path }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
              type: res.headers["content-type"],
            }),
          );
        });
        req.on("error", reject);
        req.end();
      });
    expect(await call("POST", "/checkpoint")).toEqual({
      status: 200,
      body: "state-42",
      type: "application/octet-stream",
    });
    expect((await call("GET", "/checkpoint")).status).toBe(404);
    await server?.close();
    expect(await serveCheckpoints(() => Buffer.alloc(0), undefined)).toBeUndefined();
  });

  it("loads restored bytes only when MS2M_RESTORE_FROM is set", () => {
    const dir = mkdtempSync(join(tmpdir(), "ms2m-restore-"));
    const file = join(dir, "state");
    writeFileSync(file, Buffer.from([1, 2, 3]));
    expect(loadRestoredState(file)).toEqual(Buffer.from([1, 2, 3]));
    expect(loadRestoredState(undefined)).toBeUndefined();
  });
});

describe("registerConsumerMetrics", () => {
  it("exposes the SDK counters to a prom-client registry", async () => {
    const { Registry } = await import("prom-client");
    const { MigratingConsumer } = await import("../../../src/sdk/consumer.ts");
    const { registerConsumerMetrics } = await import("../../../src/sdk/metrics.ts");
    const registry = new Registry();
    const consumer = new MigratingConsumer({ url: "amqp://unused", queue: "q", handler: () => undefined });
    registerConsumerMetrics(consumer, registry);
    const text = await registry.metrics();
    expect(text).toContain("ms2m_sdk_messages_processed 0");
    expect(text).toContain("ms2m_sdk_duplicates_skipped 0");
  });
});
