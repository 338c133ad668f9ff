import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep } from "../../../tooling/exec.ts";
import { controllerTestEnv } from "../../cluster/controller/env.ts";
import {
  brokerUp,
  chaosCase,
  chaosSetup,
  phaseOf,
  reach,
  STRATEGIES,
  type ChaosSetup,
  type Run,
} from "./scenario.ts";

// RabbitMQ outages around Replaying, for this cluster only: the pods and the controller reach
// the broker through the harness's relay (hostIp:5672 → 127.0.0.1:5672), and the relay is what
// fails — every connection reset repeatedly, or every connection reset and new ones refused for
// 5 s. The shared broker on this machine is never stopped (other sessions use it); the producer
// and the accounting connect to it directly, as a producer outside the partition would. The
// outage starts late in Restoring so that it covers the start of Replaying; the row names the
// phases the migration went through meanwhile.
//
// The outage is bounded three times over: the case ends it in a finally, afterEach and a process
// exit hook end it again, and the relay itself ignores a cut older than 120 s.
vi.setConfig({ testTimeout: 300_000 });
const env = controllerTestEnv();
let setup: ChaosSetup;
const restore = () => {
  try {
    env.cluster.restoreBroker();
  } catch {
    // the cluster directory is gone: so is the relay
  }
};
process.once("exit", restore);

beforeAll(async () => {
  setup = await chaosSetup(env, "chaos-mq");
});
beforeEach(async () => {
  expect(await brokerUp(), "the shared broker at 127.0.0.1:5672 is down before the case").toBe(true);
});
afterEach(async () => {
  restore();
  expect(await brokerUp(), "the shared broker at 127.0.0.1:5672 is down after the case").toBe(true);
});
afterFile(async (failed) => {
  restore();
  await setup?.teardown(failed);
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

  it("every broker connection reset repeatedly around Replaying", async () => {
    const row = await chaosCase(env, setup, {
      group: "RabbitMQ outage",
      strategy,
      fault: "broker connections of the cluster reset ×4 (≈1 s apart)",
      label: `mq-${short}-close`,
      inject: async (run) => {
        await reach(run, "Restoring");
        await sleep(400);
        return phasesDuring(run, async () => {
          for (let i = 0; i < 4; i++) {
            env.cluster.dropBrokerConnections();
            await sleep(1000);
          }
        });
      },
    });
    expect(row.error).toBeUndefined();
    expect(row.lost).toBe(0);
    expect(row.twice).toBe(0);
    expect(row.leftovers).toEqual([]);
  });

  it("broker unreachable for 5 s around Replaying", async () => {
    const row = await chaosCase(env, setup, {
      group: "RabbitMQ outage",
      strategy,
      fault: "broker unreachable from the cluster for 5 s (connections reset, new ones refused)",
      label: `mq-${short}-stop`,
      inject: async (run) => {
        await reach(run, "Restoring");
        await sleep(400);
        return phasesDuring(run, async () => {
          try {
            env.cluster.cutBroker(5_000);
            await sleep(5_000);
          } finally {
            restore();
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
