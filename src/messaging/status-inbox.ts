// Reads the SDK's answers from the migration's status queue.
//
// Answers are kept in memory only: after a controller restart the phase handler resends the
// control message (same message id) and the SDK answers again, so nothing here needs to survive.
import { timeout } from "../common/errors.ts";
import { sleep } from "../common/backoff.ts";
import {
  statusMessageSchema,
  statusQueueName,
  type StatusMessage,
  type StatusType,
} from "../protocol/replay.ts";
import type { BrokerPool } from "./broker-pool.ts";

export class StatusInbox {
  readonly #pool: BrokerPool;
  readonly #url: string;
  readonly #uid: string;
  /** Latest status per `<pod>/<type>`. */
  readonly #latest = new Map<string, StatusMessage>();
  readonly #progress: StatusMessage[] = [];

  constructor(pool: BrokerPool, brokerUrl: string, uid: string) {
    this.#pool = pool;
    this.#url = brokerUrl;
    this.#uid = uid;
  }

  /** Takes every waiting status message off the queue. */
  async poll(): Promise<void> {
    const queue = statusQueueName(this.#uid);
    await this.#pool.withChannel(this.#url, this.#uid, async (ch) => {
      for (;;) {
        const msg = await ch.get(queue, { noAck: false });
        if (msg === false) return;
        const parsed = statusMessageSchema.safeParse(safeJson(msg.content));
        if (parsed.success && parsed.data.migration === this.#uid) this.#record(parsed.data);
        ch.ack(msg);
      }
    });
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

  /** Polls until `pod` (any pod if undefined) answered `inReplyTo` with `type`, or throws Timeout. */
  async await(
    pod: string | undefined,
    type: StatusType,
    inReplyTo: string,
    timeoutMs: number,
    pollMs = 20,
  ): Promise<StatusMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.poll();
      const status = this.latest(pod, type);
      if (status && status.inReplyTo === inReplyTo) return status;
      if (Date.now() >= deadline)
        throw timeout(`no ${type} from ${pod ?? "the source"} within ${timeoutMs} ms`);
      await sleep(pollMs);
    }
  }
}

function safeJson(content: Buffer): unknown {
  try {
    return JSON.parse(content.toString("utf8"));
  } catch {
    return undefined;
  }
}
