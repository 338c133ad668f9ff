import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sleep } from "../../harness/exec.ts";
import { controllerTestEnv } from "../../cluster/controller/env.ts";
import {
  chaosCase,
  chaosSetup,
  phaseOf,
  rabbitmqctl,
  reach,
  STRATEGIES,
  waitForBroker,
  type ChaosSetup,
  type Run,
} from "./scenario.ts";

// RabbitMQ outages around Replaying: every connection closed repeatedly, or the broker
// application stopped for a few seconds (durable queues, persistent messages survive). The
// outage starts late in Restoring so that it covers the start of Replaying; the row names the
// phases the migration went through while the broker was out. The broker is always restored.
vi.setConfig({ testTimeout: 300_000 });
const env = controllerTestEnv();
let setup: ChaosSetup;

beforeAll(async () => {
  setup = await chaosSetup(env, "chaos-mq");
});
afterAll(async () => {
  await rabbitmqctl(["start_app"]).catch(() => undefined);
  await setup?.teardown();
});

/** Phases seen (polled) while `during` runs. */
async function phasesDuring(run: Run, during: () => Promise<void>): Promise<string> {
  const seen: string[] = [];
  let done = false;
  const poll = (async () => {
    while (!done) {
      const p = await phaseOf(run);
      if (seen[seen.length - 1] !== p) seen.push(p);
      await sleep(50);
    }
  })();
  try {
    await during();
  } finally {
    done = true;
    await poll;
  }
  return seen.join("→");
}

describe.each(STRATEGIES)("%s", (strategy) => {
  const short = strategy === "Sequential" ? "seq" : "sp";

  it("close_all_connections repeatedly around Replaying", async () => {
    const row = await chaosCase(env, setup, {
      group: "RabbitMQ outage",
      strategy,
      fault: "rabbitmqctl close_all_connections ×4 (≈1 s apart)",
      label: `mq-${short}-close`,
      inject: async (run) => {
        await reach(run, "Restoring");
        await sleep(400);
        return phasesDuring(run, async () => {
          for (let i = 0; i < 4; i++) {
            await rabbitmqctl(["close_all_connections", "ms2m chaos test"]);
            await sleep(300);
          }
        });
      },
    });
    expect(row.error).toBeUndefined();
    expect(row.lost).toBe(0);
    expect(row.twice).toBe(0);
    expect(row.leftovers).toEqual([]);
  });

  it("stop_app for 5 s around Replaying", async () => {
    const row = await chaosCase(env, setup, {
      group: "RabbitMQ outage",
      strategy,
      fault: "rabbitmqctl stop_app, 5 s, start_app",
      label: `mq-${short}-stop`,
      inject: async (run) => {
        await reach(run, "Restoring");
        await sleep(400);
        return phasesDuring(run, async () => {
          try {
            await rabbitmqctl(["stop_app"]);
            await sleep(5_000);
          } finally {
            await rabbitmqctl(["start_app"]);
            await waitForBroker();
          }
        });
      },
    });
    expect(row.error).toBeUndefined();
    expect(row.lost).toBe(0);
    expect(row.twice).toBe(0);
    expect(row.leftovers).toEqual([]);
  });
});
