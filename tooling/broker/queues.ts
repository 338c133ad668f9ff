// A queue seen from outside, for the tests and the stack: a passive declare on a throwaway
// channel of its own connection (a missing queue closes that channel, nothing else).
import { connect } from "amqplib";

/** The shared RabbitMQ the tests, the benchmarks and the demo use. */
export const LOCAL_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672";

/** Ready messages and consumers of a queue, or undefined if it does not exist. */
export async function queueStats(
  queue: string,
  url = LOCAL_BROKER_URL,
): Promise<{ messageCount: number; consumerCount: number } | undefined> {
  const conn = await connect(url);
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    const { messageCount, consumerCount } = await ch.checkQueue(queue);
    return { messageCount, consumerCount };
  } catch {
    return undefined;
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Ready messages in a queue, or undefined if it does not exist. */
export async function readyCount(queue: string, url = LOCAL_BROKER_URL): Promise<number | undefined> {
  return (await queueStats(queue, url))?.messageCount;
}
