// Migration-aware consumer: consumes the primary queue, and follows the ms2m controller's
// control messages (replay queue during a migration, back to the primary queue afterwards).
//
// Everything the consumer does (deliveries from any queue, control messages, state snapshots)
// runs through one serial work chain. So a snapshot never sees half a message, and a control
// message is handled only after every delivery that arrived before it.
import amqp from "amqplib";
import type { ChannelModel, ConfirmChannel, ConsumeMessage, GetMessage } from "amqplib";
import { backoffDelay, sleep, type BackoffOptions } from "./backoff.ts";
import { DedupWindow, DEFAULT_DEDUP_CAPACITY } from "./dedup.ts";
import { readPodName } from "./pod-name.ts";
import {
  CONTROL_QUEUE_ARGS,
  FENCE_HEADER,
  controlMessageSchema,
  controlQueueName,
  type ConsumerCounters,
  type ControlMessage,
  type StatusMessage,
} from "./protocol.ts";

export type Delivery = ConsumeMessage | GetMessage;

export interface ConsumerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface MigratingConsumerOptions {
  /** Broker URL (with credentials); never logged. */
  url: string;
  /** The workload's own queue. */
  queue: string;
  /** Applies one message to the application state. Keep state changes synchronous (see docs). */
  handler: (message: Delivery) => void | Promise<void>;
  /** Identity used to de-duplicate; default: the AMQP messageId property. */
  dedupKey?: (message: Delivery) => string | undefined;
  /** Declares the workload's topology (exchange, queue, binding) on every (re)connect. */
  setup?: (channel: ConfirmChannel) => Promise<void>;
  prefetch?: number;
  dedupCapacity?: number;
  /** Pod name source, read at every (re)connect; default reads the Downward API file / POD_NAME. */
  podName?: () => string;
  /** SDK state from a checkpoint (see snapshot()). Its presence means "restored": wait for START_REPLAY. */
  restored?: ConsumerSnapshot;
  /** Consume the primary queue right away even when restored (default false). */
  consumePrimaryWhenRestored?: boolean;
  progressIntervalMs?: number;
  reconnect?: BackoffOptions;
  logger?: ConsumerLogger;
}

/** The part of the checkpointed state that belongs to the SDK. */
export interface ConsumerSnapshot {
  dedup: string[];
}

type Mode = "primary" | "awaiting-replay" | "replay" | "stopped";

const silent: ConsumerLogger = { info() {}, warn() {} };

export class MigratingConsumer {
  readonly #opts: MigratingConsumerOptions;
  readonly #log: ConsumerLogger;
  readonly #dedup: DedupWindow;
  readonly #counters: ConsumerCounters = { processed: 0, replayed: 0, duplicatesSkipped: 0, unacked: 0 };
  /** Replies already sent, by control messageId: a resent control message gets the same answer. */
  readonly #answered = new Map<string, StatusMessage>();
  #mode: Mode;
  #replayQueue: string | undefined;
  #migration: { id: string; replyTo: string } | undefined;
  #conn: ChannelModel | undefined;
  #ch: ConfirmChannel | undefined;
  #primaryTag: string | undefined;
  #replayTag: string | undefined;
  #chain: Promise<void> = Promise.resolve();
  #podName = "";
  #closed = false;
  #connected: Promise<void> | undefined;
  /** A connect loop is running: a connection lost meanwhile is its to retry, not a second loop's. */
  #connecting = false;
  #progressTimer: NodeJS.Timeout | undefined;

  constructor(options: MigratingConsumerOptions) {
    this.#opts = options;
    this.#log = options.logger ?? silent;
    this.#dedup = new DedupWindow(
      options.dedupCapacity ?? DEFAULT_DEDUP_CAPACITY,
      options.restored?.dedup ?? [],
    );
    this.#mode = options.restored && !options.consumePrimaryWhenRestored ? "awaiting-replay" : "primary";
  }

  get mode(): Mode {
    return this.#mode;
  }

  get podName(): string {
    return this.#podName;
  }

  /** Processed, replayed, duplicates skipped, deliveries held unacknowledged. */
  metrics(): ConsumerCounters {
    return { ...this.#counters };
  }

  /** Connects (retrying with backoff) and starts consuming. */
  async start(): Promise<void> {
    this.#connected ??= this.#connectLoop();
    await this.#connected;
  }

  /**
   * Runs `capture` between two messages and returns its result with the SDK's own state. Put
   * both into the checkpoint: the dedup window is what makes the replay exactly-once in effect.
   */
  snapshot<T>(capture: () => T): Promise<{ app: T; sdk: ConsumerSnapshot }> {
    return this.#enqueue(() => ({ app: capture(), sdk: { dedup: this.#dedup.snapshot() } }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopProgress();
    await this.#chain.catch(() => undefined);
    await this.#conn?.close().catch(() => undefined);
  }

  // --- connection -------------------------------------------------------------------------

  async #connectLoop(): Promise<void> {
    this.#connecting = true;
    try {
      for (let attempt = 1; !this.#closed; attempt++) {
        try {
          await this.#connectOnce();
          return;
        } catch (err) {
          const delay = backoffDelay(attempt, this.#opts.reconnect);
          this.#log.warn({ err: errText(err), attempt, delay }, "broker connect failed; retrying");
          this.#ch = undefined;
          await this.#conn?.close().catch(() => undefined);
          await sleep(delay);
        }
      }
    } finally {
      this.#connecting = false;
    }
  }

  async #connectOnce(): Promise<void> {
    const conn = await amqp.connect(this.#opts.url);
    this.#conn = conn;
    conn.on("error", () => undefined); // 'close' follows and drives the reconnect
    conn.on("close", () => this.#onConnectionLost(conn));
    const ch = await conn.createConfirmChannel();
    ch.on("error", () => undefined);
    await ch.prefetch(this.#opts.prefetch ?? 100);
    this.#ch = ch;
    this.#primaryTag = undefined;
    this.#replayTag = undefined;
    await this.#opts.setup?.(ch);
    // Re-read at every connect: a restored process has a new pod, hence a new control queue.
    this.#podName = (this.#opts.podName ?? readPodName)();
    const control = controlQueueName(this.#podName);
    await ch.assertQueue(control, { durable: true, arguments: { ...CONTROL_QUEUE_ARGS } });
    await ch.consume(control, (msg) => msg && this.#dispatch(ch, () => this.#onControl(ch, msg)));
    if (this.#mode === "primary") await this.#consumePrimary(ch);
    if (this.#mode === "replay" && this.#replayQueue) await this.#consumeReplay(ch, this.#replayQueue);
    this.#log.info({ pod: this.#podName, mode: this.#mode }, "consumer connected");
  }

  #onConnectionLost(conn: ChannelModel): void {
    if (this.#closed || conn !== this.#conn) return;
    this.#ch = undefined;
    // Unacknowledged deliveries go back to their queues; redeliveries are de-duplicated.
    this.#counters.unacked = 0;
    // Lost while a connect loop is still setting it up: that loop retries. Starting a second
    // loop here would leave two connections consuming (two consumers on the control queue,
    // the primary queue consumed on one while the other follows START_REPLAY).
    if (this.#connecting) return;
    this.#log.warn({ pod: this.#podName }, "broker connection lost; reconnecting");
    this.#connected = this.#connectLoop();
  }

  async #consumePrimary(ch: ConfirmChannel): Promise<void> {
    const { consumerTag } = await ch.consume(this.#opts.queue, (msg) => msg && this.#onData(ch, msg, false));
    this.#primaryTag = consumerTag;
  }

  async #consumeReplay(ch: ConfirmChannel, queue: string): Promise<void> {
    const { consumerTag } = await ch.consume(queue, (msg) => msg && this.#onData(ch, msg, true));
    this.#replayTag = consumerTag;
  }

  // --- work chain ---------------------------------------------------------------------------

  #enqueue<T>(work: () => T | Promise<T>): Promise<T> {
    const result = this.#chain.then(work);
    this.#chain = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  #dispatch(ch: ConfirmChannel, work: () => Promise<void>): void {
    this.#enqueue(work).catch((err: unknown) => {
      // Typically the channel closed under us: the delivery is requeued by the broker.
      if (ch === this.#ch) this.#log.warn({ err: errText(err) }, "message handling failed");
    });
  }

  #onData(ch: ConfirmChannel, msg: Delivery, fromReplay: boolean): void {
    this.#counters.unacked++;
    this.#dispatch(ch, () => this.#applyData(ch, msg, fromReplay));
  }

  async #applyData(ch: ConfirmChannel, msg: Delivery, fromReplay: boolean): Promise<void> {
    try {
      if (msg.properties.headers?.[FENCE_HEADER]) {
        await this.#onFence(ch, msg);
      } else {
        const key = (this.#opts.dedupKey ?? defaultKey)(msg);
        if (key !== undefined && this.#dedup.has(key)) {
          this.#counters.duplicatesSkipped++;
        } else {
          try {
            await this.#opts.handler(msg);
          } catch (err) {
            // The application refused the message: state unchanged, so hand it back for a retry.
            this.#log.warn({ err: errText(err) }, "handler failed; message requeued");
            nack(ch, msg);
            return;
          }
          // Marked right after the state change, before any other work of the chain can run.
          if (key !== undefined) this.#dedup.add(key);
          this.#counters.processed++;
          if (fromReplay) this.#counters.replayed++;
        }
      }
      ack(ch, msg);
    } finally {
      if (ch === this.#ch) this.#counters.unacked = Math.max(0, this.#counters.unacked - 1);
    }
  }

  // --- control protocol -----------------------------------------------------------------------

  async #onControl(ch: ConfirmChannel, msg: ConsumeMessage): Promise<void> {
    let control: ControlMessage;
    try {
      control = controlMessageSchema.parse(JSON.parse(msg.content.toString("utf8")));
    } catch (err) {
      this.#log.warn({ err: errText(err) }, "ignoring malformed control message");
      ack(ch, msg);
      return;
    }
    const id = msg.properties.messageId as string | undefined;
    const previous = id ? this.#answered.get(id) : undefined;
    if (previous) {
      await this.#reply(ch, control.replyTo, { ...previous, at: Date.now() });
      ack(ch, msg);
      return;
    }
    this.#migration = { id: control.migration, replyTo: control.replyTo };
    switch (control.type) {
      case "START_REPLAY":
        if (this.#primaryTag) await ch.cancel(this.#primaryTag);
        this.#primaryTag = undefined;
        if (this.#replayTag === undefined) await this.#consumeReplay(ch, control.replayQueue);
        this.#mode = "replay";
        this.#replayQueue = control.replayQueue;
        this.#startProgress();
        await this.#answer(ch, msg, control, "REPLAY_STARTED");
        return;
      case "STOP_CONSUMING":
        if (this.#primaryTag) await ch.cancel(this.#primaryTag);
        this.#primaryTag = undefined;
        this.#mode = "stopped";
        // Deliveries that arrived before cancel-ok are queued ahead of this: answer after them.
        void this.#enqueue(() => this.#answer(ch, msg, control, "STOPPED")).catch(() => undefined);
        return;
      case "RESUME_CONSUMING":
        if (this.#mode === "stopped" || this.#mode === "primary") {
          this.#mode = "primary";
          if (!this.#primaryTag) await this.#consumePrimary(ch);
        }
        await this.#answer(ch, msg, control, "RESUMED");
        return;
      case "END_REPLAY":
        if (this.#replayTag) await ch.cancel(this.#replayTag);
        this.#replayTag = undefined;
        void this.#enqueue(() => this.#finishReplay(ch, msg, control)).catch(() => undefined);
        return;
      case "FENCE": // only valid through the primary queue
        ack(ch, msg);
        return;
    }
  }

  async #finishReplay(
    ch: ConfirmChannel,
    msg: ConsumeMessage,
    control: Extract<ControlMessage, { type: "END_REPLAY" }>,
  ): Promise<void> {
    if (!control.cutoff) {
      // The controller unbound the replay queue before END_REPLAY: nothing new can arrive, so
      // once get() finds it empty every message it ever held has been applied or skipped.
      for (;;) {
        const got = await ch.get(control.replayQueue, { noAck: false });
        if (got === false) break;
        this.#counters.unacked++;
        await this.#applyData(ch, got, true);
      }
    }
    this.#stopProgress();
    // Counters as of leaving the replay queue (nothing from it is unacknowledged now).
    const counters = this.metrics();
    this.#mode = "primary";
    this.#replayQueue = undefined;
    if (!this.#primaryTag) await this.#consumePrimary(ch);
    await this.#answer(ch, msg, control, "REPLAY_ENDED", { drainedToEmpty: !control.cutoff, counters });
  }

  async #onFence(ch: ConfirmChannel, msg: Delivery): Promise<void> {
    const parsed = controlMessageSchema.safeParse(safeJson(msg.content));
    if (!parsed.success || parsed.data.type !== "FENCE") return;
    this.#migration = { id: parsed.data.migration, replyTo: parsed.data.replyTo };
    await this.#reply(ch, parsed.data.replyTo, this.#status("FENCE_PASSED", parsed.data.migration, msg));
  }

  async #answer(
    ch: ConfirmChannel,
    msg: ConsumeMessage,
    control: ControlMessage,
    type: StatusMessage["type"],
    extra: Partial<StatusMessage> = {},
  ): Promise<void> {
    const status = { ...this.#status(type, control.migration, msg), ...extra };
    await this.#reply(ch, control.replyTo, status);
    if (status.inReplyTo) this.#answered.set(status.inReplyTo, status);
    ack(ch, msg);
  }

  #status(type: StatusMessage["type"], migration: string, msg: Delivery): StatusMessage {
    const inReplyTo = msg.properties.messageId as string | undefined;
    return { type, migration, pod: this.#podName, inReplyTo, at: Date.now(), counters: this.metrics() };
  }

  async #reply(ch: ConfirmChannel, queue: string, status: StatusMessage): Promise<void> {
    ch.sendToQueue(queue, Buffer.from(JSON.stringify(status)), {
      persistent: true,
      contentType: "application/json",
    });
    await ch.waitForConfirms();
  }

  #startProgress(): void {
    this.#stopProgress();
    const every = this.#opts.progressIntervalMs ?? 1000;
    this.#progressTimer = setInterval(() => {
      const ch = this.#ch;
      const migration = this.#migration;
      if (!ch || !migration) return;
      const status: StatusMessage = {
        type: "PROGRESS",
        migration: migration.id,
        pod: this.#podName,
        at: Date.now(),
        counters: this.metrics(),
      };
      this.#reply(ch, migration.replyTo, status).catch(() => undefined);
    }, every);
    this.#progressTimer.unref();
  }

  #stopProgress(): void {
    if (this.#progressTimer) clearInterval(this.#progressTimer);
    this.#progressTimer = undefined;
  }
}

function nack(ch: ConfirmChannel, msg: Delivery): void {
  try {
    ch.nack(msg, false, true);
  } catch {
    // Channel already closed: the broker requeues it anyway.
  }
}

function ack(ch: ConfirmChannel, msg: Delivery): void {
  try {
    ch.ack(msg);
  } catch {
    // Channel already closed: the broker requeues the message; its redelivery is a duplicate.
  }
}

const defaultKey = (msg: Delivery): string | undefined =>
  (msg.properties.messageId as string | undefined) || undefined;

function safeJson(content: Buffer): unknown {
  try {
    return JSON.parse(content.toString("utf8"));
  } catch {
    return undefined;
  }
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
