// Migration-aware consumer: consumes the primary queue, and follows the ms2m controller's
// control messages (replay queue during a migration, back to the primary queue afterwards).
//
// Everything the consumer does (deliveries from any queue, control messages, state snapshots)
// runs through one serial work chain. So a snapshot never sees half a message, and a control
// message is handled only after every delivery that arrived before it.
//
// It also notices by itself that it was restored into another pod (pod-identity.ts): under CRIU
// the restored process is this very process, whose broker connection died on restore. At every
// (re)connect it re-reads its pod identity; a different pod means "restored": wait for
// START_REPLAY on the new pod's control queue instead of consuming the primary queue.
import amqp from "amqplib";
import type { ChannelModel, ConfirmChannel, ConsumeMessage, GetMessage } from "amqplib";
import { backoffDelay, sleep, type BackoffOptions } from "../common/backoff.ts";
import { DedupWindow, DEFAULT_DEDUP_CAPACITY } from "./dedup.ts";
import {
  identityChange,
  isMigrationTargetPod,
  readPodIdentity,
  type IdentityChange,
  type PodIdentity,
} from "./pod-identity.ts";
import {
  CONTROL_QUEUE_ARGS,
  FENCE_HEADER,
  controlMessageSchema,
  controlQueueName,
  type ConsumerCounters,
  type ControlMessage,
  type StatusMessage,
} from "../protocol/replay.ts";

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
  /**
   * Which pod this process runs in, read at every (re)connect. Default: readPodIdentity(), i.e.
   * the Downward API files (MS2M_POD_NAME_FILE, MS2M_POD_UID_FILE), else POD_NAME, with which a
   * restore cannot be detected (the SDK warns).
   */
  podIdentity?: () => PodIdentity;
  /** Shorthand for a name-only `podIdentity`. */
  podName?: () => string;
  /**
   * Called once when the SDK finds the process in another pod than it last connected as
   * (restored), before it handles anything in the new pod: reopen per-pod files, refresh data
   * derived from the hostname. Runs in the work chain; a failure is logged, not fatal.
   */
  onRestored?: (info: RestoreInfo) => void | Promise<void>;
  /**
   * The simulated runtime only (simulated-runtime.ts): SDK state from the snapshot the fresh
   * process was started from. Its presence means "restored": wait for START_REPLAY.
   */
  restored?: ConsumerSnapshot;
  /** Consume the primary queue right away even when restored (default false). */
  consumePrimaryWhenRestored?: boolean;
  /**
   * Whether this pod is a migration's target (a fresh process there is a restore that became a
   * cold start: it waits for the controller instead of consuming). Default: the Downward API
   * labels file (isMigrationTargetPod); without it a fresh process always consumes.
   */
  inMigrationTarget?: () => boolean;
  progressIntervalMs?: number;
  reconnect?: BackoffOptions;
  logger?: ConsumerLogger;
}

/** The part of the checkpointed state that belongs to the SDK (simulated runtime). */
export interface ConsumerSnapshot {
  dedup: string[];
  /** The pod the snapshot was taken in: lets a process started from it see that it moved. */
  pod?: { name: string; uid?: string };
}

export interface RestoreInfo {
  /** The pod the process ran in before (the source pod of the migration). */
  previousPod: string;
  /** The pod it runs in now; the same name for a pod restored under its own name (StatefulSet). */
  pod: string;
}

type Mode = "primary" | "awaiting-replay" | "replay" | "stopped";

const silent: ConsumerLogger = { info() {}, warn() {} };

/** Minimum gap between two PROGRESS reports (the caught-up ones; the heartbeat is separate). */
const CAUGHT_UP_MIN_GAP_MS = 100;

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
  /** The pod this process last connected as. */
  #identity: PodIdentity | undefined;
  /** The pod this process was restored from (reported to the controller, which verifies it). */
  #restoredFrom: PodIdentity | undefined;
  #warnedEnvIdentity = false;
  #closed = false;
  #connected: Promise<void> | undefined;
  /** A connect loop is running: a connection lost meanwhile is its to retry, not a second loop's. */
  #connecting = false;
  #progressTimer: NodeJS.Timeout | undefined;
  #caughtUpTimer: NodeJS.Timeout | undefined;
  #lastProgressAt = 0;

  constructor(options: MigratingConsumerOptions) {
    this.#opts = options;
    this.#log = options.logger ?? silent;
    this.#dedup = new DedupWindow(
      options.dedupCapacity ?? DEFAULT_DEDUP_CAPACITY,
      options.restored?.dedup ?? [],
    );
    this.#mode = options.restored && !options.consumePrimaryWhenRestored ? "awaiting-replay" : "primary";
    // Compared at the first connect, so a process started from a snapshot sees its move as well.
    this.#identity = options.restored?.pod;
  }

  get mode(): Mode {
    return this.#mode;
  }

  /** The pod this process last connected as ("" before the first connect). */
  get podName(): string {
    return this.#identity?.name ?? "";
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
   * Runs `capture` between two messages and returns its result with the SDK's own state. The
   * simulated runtime puts both into its checkpoint bytes: the dedup window is what makes the
   * replay exactly-once in effect. (Under CRIU both simply stay in memory.) Also a consistent
   * final state dump.
   */
  snapshot<T>(capture: () => T): Promise<{ app: T; sdk: ConsumerSnapshot }> {
    return this.#enqueue(() => {
      const app = capture();
      const dedup = this.#dedup.snapshot();
      const pod = this.#identity && podOf(this.#identity);
      return { app, sdk: pod ? { dedup, pod } : { dedup } };
    });
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
    // Before connecting: an unreadable identity must not lead to consuming under a wrong one.
    const identity = this.#readIdentity();
    const change = identityChange(this.#identity, identity);
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
    await this.#adopt(identity, change);
    // A restored process has a new pod, hence a new control queue.
    const control = controlQueueName(identity.name);
    await ch.assertQueue(control, { durable: true, arguments: { ...CONTROL_QUEUE_ARGS } });
    await ch.consume(control, (msg) => msg && this.#dispatch(ch, () => this.#onControl(ch, msg)));
    if (this.#mode === "primary") await this.#consumePrimary(ch);
    if (this.#mode === "replay" && this.#replayQueue) await this.#consumeReplay(ch, this.#replayQueue);
    this.#log.info({ pod: identity.name, mode: this.#mode }, "consumer connected");
  }

  #readIdentity(): PodIdentity {
    if (this.#opts.podIdentity) return this.#opts.podIdentity();
    if (this.#opts.podName) return { name: this.#opts.podName() };
    return readPodIdentity();
  }

  /** Takes `current` as this process's pod; another pod than before means it was restored. */
  async #adopt(current: PodIdentity, change: IdentityChange): Promise<void> {
    const previous = this.#identity;
    // Keep a UID learnt before if the file is unreadable now, so a later UID change still counts.
    this.#identity = change === "same" ? { ...current, uid: current.uid ?? previous?.uid } : current;
    if (current.source === "env" && !this.#warnedEnvIdentity) {
      this.#warnedEnvIdentity = true;
      this.#log.warn(
        { pod: current.name },
        "pod name from POD_NAME, no Downward API file: a restore into another pod cannot be detected",
      );
    }
    // Committed above before the hook runs: a connection lost meanwhile does not make the retry
    // see the move a second time.
    if (change === "restored" && previous) await this.#enqueue(() => this.#restoredInto(previous, current));
    if (
      change === "first" &&
      this.#mode === "primary" &&
      (this.#opts.inMigrationTarget ?? isMigrationTargetPod)()
    ) {
      // Started fresh in a migration's target pod: the checkpoint was not restored. Consuming
      // now would apply messages to a state the controller may throw away; it decides.
      this.#mode = "awaiting-replay";
      this.#log.warn(
        { pod: current.name },
        "started fresh in a migration target pod (not restored from the checkpoint): waiting for the controller",
      );
    }
  }

  /**
   * Now in another pod. Runs in the work chain, after every delivery the old pod's channel had
   * handed over: those are applied (they reached the source after the replay queue was bound, so
   * the replay skips them; their acks go to a dead channel and are dropped).
   */
  async #restoredInto(previous: PodIdentity, current: PodIdentity): Promise<void> {
    // Per pod: the migration it took part in, the answers it gave, its counters. Not the dedup
    // window: it describes the application state, which moved with the process.
    this.#answered.clear();
    this.#migration = undefined;
    this.#replayQueue = undefined;
    this.#stopProgress();
    Object.assign(this.#counters, { processed: 0, replayed: 0, duplicatesSkipped: 0, unacked: 0 });
    this.#mode = this.#opts.consumePrimaryWhenRestored ? "primary" : "awaiting-replay";
    this.#restoredFrom = previous;
    const info: RestoreInfo = { previousPod: previous.name, pod: current.name };
    this.#log.info({ ...info, mode: this.#mode }, "restored into another pod");
    try {
      await this.#opts.onRestored?.(info);
    } catch (err) {
      this.#log.warn({ err: errText(err) }, "onRestored hook failed");
    }
  }

  #onConnectionLost(conn: ChannelModel): void {
    if (this.#closed || conn !== this.#conn) return;
    this.#ch = undefined;
    // Unacknowledged deliveries go back to their queues; redeliveries are de-duplicated.
    // (After a CRIU restore they were the source's and it still holds them: nothing comes back.)
    this.#counters.unacked = 0;
    // Lost while a connect loop is still setting it up: that loop retries. Starting a second
    // loop here would leave two connections consuming (two consumers on the control queue,
    // the primary queue consumed on one while the other follows START_REPLAY).
    if (this.#connecting) return;
    this.#log.warn({ pod: this.podName }, "broker connection lost; reconnecting");
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
      // Caught up with the replay queue (nothing delivered is left): tell the controller now,
      // it decides on the cutover from this report instead of polling.
      if (fromReplay && this.#mode === "replay" && this.#counters.unacked === 0) this.#reportCaughtUp();
    }
  }

  // --- control protocol -----------------------------------------------------------------------

  async #onControl(ch: ConfirmChannel, msg: ConsumeMessage): Promise<void> {
    // From a lost channel: unacked, so the broker hands it to the next connection, unless it was
    // the source's (restored process), which is not this pod's business any more.
    if (ch !== this.#ch) return;
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
    // The channel was lost before this ran: END_REPLAY comes again on the next one.
    if (ch !== this.#ch) return;
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
    const from = this.#restoredFrom;
    return {
      type,
      migration,
      pod: this.podName,
      inReplyTo,
      at: Date.now(),
      counters: this.metrics(),
      ...(from ? { restoredFrom: from.uid ? { pod: from.name, uid: from.uid } : { pod: from.name } } : {}),
    };
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
    this.#progressTimer = setInterval(() => this.#sendProgress(), every);
    this.#progressTimer.unref();
  }

  #sendProgress(): void {
    const ch = this.#ch;
    const migration = this.#migration;
    if (!ch || !migration || this.#mode !== "replay") return;
    this.#lastProgressAt = Date.now();
    const status: StatusMessage = {
      type: "PROGRESS",
      migration: migration.id,
      pod: this.podName,
      at: this.#lastProgressAt,
      counters: this.metrics(),
    };
    this.#reply(ch, migration.replyTo, status).catch(() => undefined);
  }

  /** A PROGRESS report soon, at most one per CAUGHT_UP_MIN_GAP_MS (a trickle of messages would flood). */
  #reportCaughtUp(): void {
    if (this.#caughtUpTimer) return;
    const delay = Math.max(0, this.#lastProgressAt + CAUGHT_UP_MIN_GAP_MS - Date.now());
    this.#caughtUpTimer = setTimeout(() => {
      this.#caughtUpTimer = undefined;
      this.#sendProgress();
    }, delay);
    this.#caughtUpTimer.unref();
  }

  #stopProgress(): void {
    if (this.#progressTimer) clearInterval(this.#progressTimer);
    this.#progressTimer = undefined;
    if (this.#caughtUpTimer) clearTimeout(this.#caughtUpTimer);
    this.#caughtUpTimer = undefined;
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

/** The identity as a snapshot keeps it (where it was read from does not travel). */
const podOf = ({ name, uid }: PodIdentity): NonNullable<ConsumerSnapshot["pod"]> =>
  uid ? { name, uid } : { name };

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
