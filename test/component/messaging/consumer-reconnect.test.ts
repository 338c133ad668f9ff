// The SDK consumer reconnects with exactly one connection, also when the connection is lost
// while it is still being set up (the broker going away and coming back in bursts): the lost
// connection's close event must not start a second connect loop next to the one that retries.
import amqp from "amqplib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MigratingConsumer } from "../../../src/sdk/consumer.ts";
import { TcpRelay } from "../../../tooling/broker/relay.ts";
import { freePort, sleep, waitUntil } from "../../../tooling/exec.ts";

const BROKER = "amqp://guest:guest@127.0.0.1:5672";
let relay: TcpRelay;
let admin: amqp.ChannelModel;
const queue = `ms2m.test.reconnect.${process.pid}.${Date.now()}`;

beforeAll(async () => {
  const port = await freePort();
  relay = await TcpRelay.start({ host: "127.0.0.1", port }, { host: "127.0.0.1", port: 5672 });
  admin = await amqp.connect(BROKER);
  const ch = await admin.createChannel();
  await ch.assertQueue(queue, { durable: false, autoDelete: false });
  await ch.close();
});

afterAll(async () => {
  const ch = await admin?.createChannel();
  await ch?.deleteQueue(queue).catch(() => undefined);
  await ch?.deleteQueue(`ms2m.control.reconnect-pod`).catch(() => undefined);
  await admin?.close().catch(() => undefined);
  await relay?.stop();
});

async function consumers(): Promise<number> {
  const ch = await admin.createChannel();
  try {
    return (await ch.checkQueue(queue)).consumerCount;
  } finally {
    await ch.close();
  }
}

it("a connection lost during set-up is retried by one loop: one consumer afterwards", async () => {
  let setups = 0;
  const consumer = new MigratingConsumer({
    url: `amqp://guest:guest@127.0.0.1:${relay.port}`,
    queue,
    podName: () => "reconnect-pod",
    reconnect: { initialMs: 50, maxMs: 200 },
    handler: () => undefined,
    setup: async (ch) => {
      setups++;
      if (setups === 2 || setups === 3) {
        // The connection is lost in the middle of the set-up of a reconnect.
        relay.dropConnections();
        await ch.checkQueue(queue);
      }
    },
  });
  try {
    await consumer.start();
    await waitUntil("consuming", async () => (await consumers()) === 1, {
      timeoutMs: 10_000,
    });
    relay.dropConnections(); // lost while consuming: reconnect #2 fails, #3 fails, #4 succeeds
    await waitUntil("set up again", () => setups >= 4, { timeoutMs: 20_000 });
    await waitUntil("consuming again", async () => (await consumers()) >= 1, {
      timeoutMs: 10_000,
    });
    await sleep(1500); // a second loop, if any, would connect by now
    expect(await consumers()).toBe(1);
    expect(setups).toBe(4);
  } finally {
    await consumer.close();
  }
});
