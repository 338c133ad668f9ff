// Sending control messages: JSON, persistent, publisher-confirmed, with a deterministic message
// id (`<uid>:<type>`) so the SDK recognises a resend and answers it again instead of acting twice.
// Every send is therefore safe to repeat, e.g. after a controller restart.
import {
  CONTROL_QUEUE_ARGS,
  FENCE_HEADER,
  controlMessageId,
  controlMessageSchema,
  controlQueueName,
  statusQueueName,
  type ControlMessage,
} from "../protocol/replay.ts";
import type { BrokerPool } from "./broker-pool.ts";

export type ControlRequest =
  | { type: "START_REPLAY"; replayQueue: string }
  | { type: "STOP_CONSUMING" }
  | { type: "RESUME_CONSUMING" }
  | { type: "END_REPLAY"; replayQueue: string; cutoff: boolean };

export function buildControl(uid: string, request: ControlRequest): ControlMessage {
  return controlMessageSchema.parse({ ...request, migration: uid, replyTo: statusQueueName(uid) });
}

/**
 * Sends a control message to `ms2m.control.<pod>`. The queue is declared first (same arguments
 * as the SDK), so a message for a pod that is not running yet waits for it.
 * Returns the message id the pod will answer with (`inReplyTo`).
 */
export async function sendControl(
  pool: BrokerPool,
  brokerUrl: string,
  uid: string,
  podName: string,
  request: ControlRequest,
): Promise<string> {
  const message = buildControl(uid, request);
  const messageId = controlMessageId(uid, message.type);
  const queue = controlQueueName(podName);
  await pool.withChannel(brokerUrl, uid, async (ch) => {
    await ch.assertQueue(queue, { durable: true, arguments: { ...CONTROL_QUEUE_ARGS } });
    ch.sendToQueue(queue, Buffer.from(JSON.stringify(message)), {
      persistent: true,
      contentType: "application/json",
      messageId,
    });
    await ch.waitForConfirms();
  });
  return messageId;
}

/**
 * Publishes a FENCE into the workload's primary queue (not the exchange: no other subscriber
 * sees it). The source's SDK answers FENCE_PASSED when it reaches it; since the queue is FIFO,
 * every message that was queued before the replay queue existed has then been consumed.
 */
export async function sendFence(
  pool: BrokerPool,
  brokerUrl: string,
  uid: string,
  primaryQueue: string,
): Promise<string> {
  const message = controlMessageSchema.parse({
    type: "FENCE",
    migration: uid,
    replyTo: statusQueueName(uid),
  });
  const messageId = controlMessageId(uid, "FENCE");
  await pool.withChannel(brokerUrl, uid, async (ch) => {
    ch.sendToQueue(primaryQueue, Buffer.from(JSON.stringify(message)), {
      persistent: true,
      contentType: "application/json",
      messageId,
      headers: { [FENCE_HEADER]: uid },
    });
    await ch.waitForConfirms();
  });
  return messageId;
}
