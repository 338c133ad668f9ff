import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep } from "../../../tooling/exec.ts";
import { controllerTestEnv } from "../../cluster/controller/env.ts";
import { brokerUp, chaosSetup, landedCase, spans, STRATEGIES, type ChaosSetup } from "./scenario.ts";

// RabbitMQ outages around Replaying, for this cluster only: the pods and the controller reach
// the broker through the harness's relay (hostIp:5672 → 127.0.0.1:5672), and the relay is what
// fails — every connection reset repeatedly, or every connection reset and new ones refused for
// 5 s. The shared broker on this machine is never stopped (other sessions use it); the producer
// and the accounting connect to it directly, as a producer outside the partition would. The
// outage starts late in Restoring so that it covers the start of Replaying: the row names the
// phases it spanned (by the migration's phaseTimings), and a case whose outage did not span
// Replaying is tried again with a fresh migration.
//
// The outage is bounded three times over: the case ends it in a finally, afterEach and a process
// exit hook end it again, and the relay itself ignores a cut older than 120 s.
vi.setConfig({ testTimeout: 900_000 });
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

/** The outages: each starts 400 ms into Restoring, and must span the start of Replaying. */
const OUTAGES = [
  {
    name: "every broker connection reset repeatedly around Replaying",
    fault: "broker connections of the cluster reset ×4 (≈1 s apart)",
    tag: "close",
    apply: async () => {
      for (let i = 0; i < 4; i++) {
        env.cluster.dropBrokerConnections();
        await sleep(1000);
      }
    },
  },
  {
    name: "broker unreachable for 5 s around Replaying",
    fault: "broker unreachable from the cluster for 5 s (connections reset, new ones refused)",
    tag: "stop",
    apply: async () => {
      try {
        env.cluster.cutBroker(5_000);
        await sleep(5_000);
      } finally {
        restore();
      }
    },
  },
];

describe.each(STRATEGIES)("%s", (strategy) => {
  it.each(OUTAGES)("$name", async (outage) => {
    await landedCase(
      env,
      setup,
      "Replaying",
      {
        group: "RabbitMQ outage",
        strategy,
        fault: outage.fault,
        label: `mq-${strategy === "Sequential" ? "seq" : "sp"}-${outage.tag}`,
        inject: (run) => run.watch.inject("Restoring", outage.apply, { delayMs: 400 }),
      },
      (landedIn) => spans(landedIn, "Replaying"),
    );
  });
});
