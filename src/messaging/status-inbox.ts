// Reads the SDK's answers from the migration's status queue.
//
// The broker pushes them: one consumer on the queue (on the migration's channel) records each
// message as it arrives, wakes whoever awaits an answer and tells the listener (the controller
// reconciles the migration on a PROGRESS report instead of polling). A consumer lost with its
// channel is re-established on the next call. Answers are kept in memory only: after a
// controller restart the phase handler resends the control message (same message id) and the
// SDK answers again, so nothing here needs to survive.
import type { ConfirmChannel, ConsumeMessage } from "amqplib";
import { timeout } from "../common/errors.ts";
import {
  statusMessageSchema,
  statusQueueName,
  type StatusMessage,
  type StatusType,
} from "../protocol/replay.ts";
import type { BrokerPool } from "./broker-pool.ts";

/** How often a waiter re-checks its subscription when nothing arrives (not a poll of the queue). */
const RESUBSCRIBE_CHECK_MS = 1000;

export class StatusInbox {
  readonly #pool: BrokerPool;
  readonly #url: string;
  readonly #uid: string;
  readonly #onStatus: ((status: StatusMessage) => void) | undefined;
  /** Latest status per `<pod>/<type>`. */
  readonly #latest = new Map<string, StatusMessage>();
  readonly #progress: StatusMessage[] = [];
  #consumer: { ch: ConfirmChannel; tag: string } | undefined;
  #subscribing: Promise<void> | undefined;
  #waiters: (() => void)[] = [];

  constructor(pool: BrokerPool, brokerUrl: string, uid: string, onStatus?: (status: StatusMessage) => void) {
    this.#pool = pool;
    this.#url = brokerUrl;
    this.#uid = uid;
    this.#onStatus = onStatus;
  }

  /** Makes sure the consumer runs; what is already queued arrives right after. */
  async poll(): Promise<void> {
    if (this.#consumer) return;
    this.#subscribing ??= this.#subscribe().finally(() => {
      this.#subscribing = undefined;
    });
    await this.#subscribing;
  }

  async #subscribe(): Promise<void> {
    const queue = statusQueueName(this.#uid);
    await this.#pool.withChannel(this.#url, this.#uid, async (ch) => {
      const { consumerTag } = await ch.consume(queue, (msg) => this.#receive(ch, msg), { noAck: false });
      this.#consumer = { ch, tag: consumerTag };
      ch.once("close", () => {
        if (this.#consumer?.ch === ch) this.#consumer = undefined;
        this.#wake();
      });
    });
  }

  #receive(ch: ConfirmChannel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled the consumer (queue deleted): subscribe again on the next call.
      if (this.#consumer?.ch === ch) this.#consumer = undefined;
      this.#wake();
      return;
    }
    const parsed = statusMessageSchema.safeParse(safeJson(msg.content));
    try {
      ch.ack(msg);
    } catch {
      // Channel closed: the broker redelivers it to the next consumer.
    }
    if (!parsed.success || parsed.data.migration !== this.#uid) return;
    this.#record(parsed.data);
    this.#wake();
    this.#onStatus?.(parsed.data);
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  #record(status: StatusMessage): void {
    this.#latest.set(`${status.pod}/${status.type}`, status);
    if (status.type === "PROGRESS" || status.type === "REPLAY_STARTED" || status.type === "REPLAY_ENDED") {
      this.#progress.push(status);
      if (this.#progress.length > 64) this.#progress.shift();
    }
  }

  latest(pod: string | undefined, type: StatusType): StatusMessage | undefined {
    if (pod !== undefined) return this.#latest.get(`${pod}/${type}`);
    return [...this.#latest.values()].filter((s) => s.type === type).sort((a, b) => b.at - a.at)[0];
  }

  /** Counter reports of the replaying pod, oldest first (for the replay rate). */
  progress(pod: string): StatusMessage[] {
    return this.#progress.filter((s) => s.pod === pod);
  }

  /** Resolves once `pod` (any pod if undefined) answered `inReplyTo` with `type`, or throws Timeout. */
  async await(
    pod: string | undefined,
    type: StatusType,
    inReplyTo: string,
    timeoutMs: number,
  ): Promise<StatusMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.poll();
      const status = this.latest(pod, type);
      if (status && status.inReplyTo === inReplyTo) return status;
      const left = deadline - Date.now();
      if (left <= 0) throw timeout(`no ${type} from ${pod ?? "the source"} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(
          () => {
            this.#waiters = this.#waiters.filter((w) => w !== wake);
            resolve();
          },
          Math.min(left, RESUBSCRIBE_CHECK_MS),
        );
        this.#waiters.push(wake);
      });
    }
  }

  /** Stops the consumer (end of the migration). */
  async close(): Promise<void> {
    const c = this.#consumer;
    this.#consumer = undefined;
    this.#wake();
    if (!c) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded: a cancel whose answer a connection reset swallowed must not hold the cleanup.
      await Promise.race([
        c.ch.cancel(c.tag),
        new Promise((resolve) => (timer = setTimeout(resolve, CANCEL_WAIT_MS))),
      ]);
    } catch {
      // The channel is gone (a lost connection): its consumer went with it. amqplib throws at
      // once on a closed channel, so this must not stop the queues' cleanup that follows.
    } finally {
      clearTimeout(timer);
    }
  }
}

/** How long closing the inbox waits for the broker to confirm the consumer's cancellation. */
const CANCEL_WAIT_MS = 5_000;

function safeJson(content: Buffer): unknown {
  try {
    return JSON.parse(content.toString("utf8"));
  } catch {
    return undefined;
  }
}
