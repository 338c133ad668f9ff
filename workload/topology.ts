// The workload's own broker topology: a durable fan-out exchange and one durable queue per
// consumer, bound with the empty key. Declared by both producer and consumer on every connect.
import type { Channel } from "amqplib";

export async function declareWorkloadTopology(ch: Channel, exchange: string, queue?: string): Promise<void> {
  await ch.assertExchange(exchange, "fanout", { durable: true });
  if (queue) {
    await ch.assertQueue(queue, { durable: true });
    await ch.bindQueue(queue, exchange, "");
  }
}

export interface SequencedMessage {
  seq: number;
  producer: string;
  at: number;
}

export const messageId = (producer: string, seq: number): string => `${producer}:${seq}`;
