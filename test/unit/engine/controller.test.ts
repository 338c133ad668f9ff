import { afterEach, describe, expect, it } from "vitest";
import { KubeConfig } from "@kubernetes/client-node";
import { createLogger } from "../../../src/common/logger.ts";
import { createRegistry } from "../../../src/common/metrics.ts";
import { Controller } from "../../../src/engine/controller.ts";
import { createEngineMetrics } from "../../../src/engine/metrics.ts";
import {
  RetryAfter,
  TerminalError,
  type Reconciler,
  type ReconcileScope,
} from "../../../src/engine/reconciler.ts";
import { sleep, waitUntil } from "../../../tooling/exec.ts";

// The engine's workers against a scripted reconciler (no informers: keys are added directly).
type Script = (
  ns: string,
  name: string,
  call: number,
  scope: ReconcileScope,
) => Promise<{ requeueAfterMs?: number }>;

const managers: Controller[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.stop()));
});

function manager(script: Script, workers = 2) {
  const calls: Array<{ key: string; at: number }> = [];
  const counts = new Map<string, number>();
  let running = 0;
  let maxRunning = 0;
  const reconciler: Reconciler = {
    reconcile: async ({ namespace: ns, name }, scope) => {
      const key = `${ns}/${name}`;
      const n = (counts.get(key) ?? 0) + 1;
      counts.set(key, n);
      calls.push({ key, at: Date.now() });
      running++;
      maxRunning = Math.max(maxRunning, running);
      try {
        return await script(ns, name, n, scope);
      } finally {
        running--;
      }
    },
  };
  const metrics = createEngineMetrics(createRegistry());
  const m = new Controller({
    name: "test",
    kc: new KubeConfig(),
    reconciler,
    log: createLogger("test", { level: "silent" }),
    metrics,
    workers,
    resyncMs: 60_000,
  });
  managers.push(m);
  return { m, calls, metrics, maxRunning: () => maxRunning };
}

const until = (cond: () => boolean, timeoutMs = 3000) =>
  waitUntil("the condition", cond, { timeoutMs, intervalMs: 5 });

const value = async (
  metrics: ReturnType<typeof createEngineMetrics>,
  name: string,
  labels: Record<string, string>,
) => {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
};

describe("Controller workers", () => {
  it("is not synced (not ready) before its informers have started", () => {
    const { m } = manager(async () => ({}));
    expect(m.synced).toBe(false);
  });

  it("reconciles each key with its namespace and name, and counts the results", async () => {
    const { m, calls, metrics } = manager(async () => ({}));
    m.startWorkers();
    m.queue.add("ns1/a");
    m.queue.add("ns2/b");
    await until(() => calls.length === 2);
    expect(calls.map((c) => c.key).sort()).toEqual(["ns1/a", "ns2/b"]);
    await until(() => !m.queue.isProcessing("ns2/b") && !m.queue.isProcessing("ns1/a"));
    expect(await value(metrics, "controller_runtime_reconcile_total", { result: "success" })).toBe(2);
    expect(await value(metrics, "workqueue_adds_total", {})).toBe(2);
  });

  it("never reconciles one key concurrently; an add meanwhile runs once more afterwards", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { m, calls, maxRunning } = manager(async (_ns, _n, call) => {
      if (call === 1) await gate;
      return {};
    }, 4);
    m.startWorkers();
    m.queue.add("ns/a");
    await until(() => calls.length === 1);
    m.queue.add("ns/a");
    m.queue.add("ns/a");
    await sleep(50);
    expect(calls.length).toBe(1);
    release();
    await until(() => calls.length === 2);
    await sleep(50);
    expect(calls.length).toBe(2);
    expect(maxRunning()).toBe(1);
  });

  it("requeues after requeueAfterMs, and backs off after errors", async () => {
    const { m, calls, metrics } = manager(async (_ns, name, call) => {
      if (name === "poll") return call < 3 ? { requeueAfterMs: 30 } : {};
      if (call < 3) throw new Error("boom");
      return {};
    });
    m.startWorkers();
    m.queue.add("ns/poll");
    m.queue.add("ns/fail");
    await until(() => calls.filter((c) => c.key === "ns/poll").length === 3);
    await until(() => calls.filter((c) => c.key === "ns/fail").length === 3);
    const poll = calls.filter((c) => c.key === "ns/poll");
    expect(poll[1]!.at - poll[0]!.at).toBeGreaterThanOrEqual(25);
    expect(await value(metrics, "controller_runtime_reconcile_total", { result: "requeue_after" })).toBe(2);
    expect(await value(metrics, "controller_runtime_reconcile_total", { result: "error" })).toBe(2);
    expect(await value(metrics, "controller_runtime_reconcile_errors_total", {})).toBe(2);
    expect(await value(metrics, "workqueue_retries_total", {})).toBe(2);
    await until(() => !m.queue.isProcessing("ns/fail"));
    expect(m.queue.numRequeues("ns/fail")).toBe(0); // forgotten after the success
  });

  it("wakes up at a RetryAfter deadline even when the backoff is longer", async () => {
    const { m, calls } = manager(async (_ns, _n, call) => {
      if (call === 1) throw new RetryAfter(new Error("not yet"), 20);
      return {};
    });
    // Twelve earlier failures of this key: its next backoff is seconds long.
    for (let i = 0; i < 12; i++) m.queue.rateLimiter.when("ns/a", Date.now());
    m.startWorkers();
    m.queue.add("ns/a");
    await until(() => calls.length === 2, 2000);
    expect(calls[1]!.at - calls[0]!.at).toBeLessThan(1000);
  });

  it("asks a busy peer again within RetryAfter's backoffCapMs, however long the backoff has grown", async () => {
    const { m, calls } = manager(async (_ns, _n, call) => {
      if (call <= 3) throw new RetryAfter(new Error("busy"), 60_000, { backoffCapMs: 40 });
      return {};
    });
    // Twelve earlier failures of this key: its next backoff would be seconds long.
    for (let i = 0; i < 12; i++) m.queue.rateLimiter.when("ns/a", Date.now());
    m.startWorkers();
    m.queue.add("ns/a");
    await until(() => calls.length === 4, 2000);
    for (let i = 1; i < 4; i++) {
      expect(calls[i]!.at - calls[i - 1]!.at).toBeGreaterThanOrEqual(35);
      expect(calls[i]!.at - calls[i - 1]!.at).toBeLessThan(1000);
    }
    // The success forgets the key's failures.
    await until(() => !m.queue.isProcessing("ns/a"));
    expect(m.queue.numRequeues("ns/a")).toBe(0);
  });

  it("gives each reconcile its own logger (key, reconcile id) and does not retry a TerminalError", async () => {
    const seen: { key: string; id: string }[] = [];
    const { m, calls, metrics } = manager(async (ns, name, _call, scope) => {
      seen.push({ key: `${ns}/${name}`, id: scope.reconcileId });
      expect(scope.log.bindings()).toMatchObject({
        controller: "test",
        key: `${ns}/${name}`,
        reconcileId: scope.reconcileId,
      });
      throw new TerminalError("cannot be helped");
    });
    m.startWorkers();
    m.queue.add("ns/a");
    m.queue.add("ns/b");
    await until(() => calls.length === 2);
    await sleep(100);
    expect(calls.length).toBe(2); // not requeued
    expect(new Set(seen.map((s) => s.id)).size).toBe(2);
    expect(await value(metrics, "controller_runtime_reconcile_errors_total", {})).toBe(2);
    expect(m.queue.numRequeues("ns/a")).toBe(0);
  });

  it("stop() waits for the reconciles in flight, then takes no more work", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let finished = false;
    const { m, calls } = manager(async () => {
      await gate;
      finished = true;
      return { requeueAfterMs: 1 };
    });
    m.startWorkers();
    m.queue.add("ns/a");
    await until(() => calls.length === 1);
    let stopped = false;
    const stopping = m.stop().then(() => (stopped = true));
    await sleep(50);
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(finished).toBe(true);
    m.queue.add("ns/b");
    await sleep(30);
    expect(calls.length).toBe(1);
  });
});
