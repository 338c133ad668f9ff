import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { createRegistry } from "../../../src/common/metrics.ts";
import { createControllerMetrics } from "../../../src/controller/metrics.ts";
import { startHttp } from "../../../src/engine/health.ts";

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(routes: Parameters<typeof startHttp>[1]): Promise<string> {
  const s = await startHttp(0, routes);
  servers.push(s);
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

describe("health and metrics HTTP", () => {
  it("answers /healthz and /readyz from the checks, each on its own", async () => {
    const state = { healthy: true, ready: false };
    const url = await serve({ checks: { healthy: () => state.healthy, ready: () => state.ready } });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toBe("not ready");
    state.ready = true;
    expect((await fetch(`${url}/readyz?verbose`)).status).toBe(200);
    state.healthy = false;
    expect((await fetch(`${url}/healthz`)).status).toBe(503);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    // No registry on this port.
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
    expect((await fetch(`${url}/`)).status).toBe(404);
  });

  it("serves the controller's metrics in the Prometheus text format", async () => {
    const metrics = createControllerMetrics(createRegistry());
    metrics.reconcileTotal.inc({ controller: "statefulmigration", result: "success" });
    const url = await serve({ registry: metrics.registry });
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const body = await res.text();
    for (const name of [
      "workqueue_depth",
      "workqueue_adds_total",
      "workqueue_queue_duration_seconds",
      "workqueue_work_duration_seconds",
      "workqueue_retries_total",
      "controller_runtime_reconcile_total",
      "controller_runtime_reconcile_time_seconds",
      "controller_runtime_reconcile_errors_total",
      "ms2m_phase_duration_seconds",
      "ms2m_migration_duration_seconds",
      "ms2m_migrations_total",
      "ms2m_migrations_in_flight",
    ])
      expect(body).toContain(`# TYPE ${name} `);
    expect(body).toContain(
      'controller_runtime_reconcile_total{controller="statefulmigration",result="success"} 1',
    );
    expect((await fetch(`${url}/healthz`)).status).toBe(404);
  });

  it("answers 500 when collecting fails, and keeps serving", async () => {
    const registry = new Registry();
    registry.metrics = () => Promise.reject(new Error("collect failed"));
    const url = await serve({ registry });
    expect((await fetch(`${url}/metrics`)).status).toBe(500);
    expect((await fetch(`${url}/metrics`)).status).toBe(500);
  });

  it("rejects when the port is taken", async () => {
    const first = await startHttp(0, {});
    servers.push(first);
    await expect(startHttp((first.address() as AddressInfo).port, {})).rejects.toThrow(/EADDRINUSE/);
  });
});
