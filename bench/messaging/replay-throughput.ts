// Replay throughput of the consumer SDK on this machine, against the local RabbitMQ:
// fills a migration's replay queue with N persistent messages, then times a restored consumer
// from START_REPLAY until it has taken all of them (half of them already in its dedup window,
// as after a checkpoint), at a few prefetch settings.
//   node bench/messaging/replay-throughput.ts [messages=20000] [amqp-url]
import { randomBytes } from "node:crypto";
import { connect } from "amqplib";
import { BrokerPool } from "../../src/messaging/broker-pool.ts";
import { ReplayMigration } from "../../src/messaging/migration.ts";
import { MigratingConsumer } from "../../src/sdk/consumer.ts";
import { controlQueueName } from "../../src/protocol/replay.ts";

const total = Number(process.argv[2] ?? 20_000);
const url = process.argv[3] ?? process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

async function once(prefetch: number): Promise<number> {
  const id = `bench-${randomBytes(4).toString("hex")}`;
  const exchange = `ms2m.bench.ex.${id}`;
  const queue = `ms2m.bench.q.${id}`;
  const pod = `pod-${id}`;
  const conn = await connect(url);
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange(exchange, "fanout", { durable: true });
  await ch.assertQueue(queue, { durable: true });
  await ch.bindQueue(queue, exchange, "");
  const pool = new BrokerPool();
  const migration = new ReplayMigration(pool, {
    uid: id,
    topology: { brokerUrl: url, exchange, primaryQueue: queue },
  });
  await migration.setup();
  for (let seq = 1; seq <= total; seq++) {
    const body = Buffer.from(JSON.stringify({ seq, producer: "bench", at: Date.now() }));
    if (!ch.publish(exchange, "", body, { persistent: true, messageId: `bench:${seq}` }))
      await ch.waitForConfirms();
  }
  await ch.waitForConfirms();
  let state = 0;
  const consumer = new MigratingConsumer({
    url,
    queue,
    prefetch,
    podName: () => pod,
    // As after a checkpoint: the first half was processed before it.
    restored: { dedup: Array.from({ length: total / 2 }, (_, i) => `bench:${i + 1}`) },
    handler: (msg) => {
      state += (JSON.parse(msg.content.toString("utf8")) as { seq: number }).seq;
    },
  });
  await consumer.start();
  const started = performance.now();
  await migration.startReplay(pod);
  while (consumer.metrics().replayed + consumer.metrics().duplicatesSkipped < total)
    await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  await consumer.close();
  await migration.cleanup();
  await pool.close();
  await ch.deleteQueue(queue);
  await ch.deleteQueue(controlQueueName(pod));
  await ch.deleteExchange(exchange);
  await conn.close();
  if (state === 0) throw new Error("nothing applied");
  return total / seconds;
}

for (const prefetch of [10, 100, 500]) {
  const rates: number[] = [];
  for (let i = 0; i < 3; i++) rates.push(await once(prefetch));
  rates.sort((a, b) => a - b);
  console.log(
    `prefetch ${prefetch}: replay ${Math.round(rates[1]!)} msg/s (median of 3; min ${Math.round(rates[0]!)}, max ${Math.round(rates[2]!)}), ${total} messages, half duplicates`,
  );
}
