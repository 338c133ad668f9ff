// One AMQP connection per broker URL, one channel per migration on it.
//
// Why: a channel error (404 NOT_FOUND, 406 PRECONDITION_FAILED) closes only that channel, so
// giving each migration its own channel keeps one migration's mistake from failing the others,
// while a single connection per broker keeps the broker's connection count flat. The prior
// implementation shared one channel and never reconnected; here a lost connection is re-opened
// with backoff on the next use, and every channel on it is re-created lazily.
//
// Broker URLs carry credentials (from the migration's Secret): they are map keys only and are
// logged exclusively through redactUrl().
import { connect, type ChannelModel, type ConfirmChannel } from "amqplib";
import { Ms2mError } from "../common/errors.ts";
import { redactUrl, type Logger } from "../common/logger.ts";
import { backoffDelay, sleep, type BackoffOptions } from "../common/backoff.ts";
import { toMs2mError } from "./broker-errors.ts";

export interface BrokerPoolOptions {
  logger?: Logger;
  reconnect?: BackoffOptions;
  /** Connect attempts per operation before it fails with a retriable ServiceUnavailable. */
  connectAttempts?: number;
  /** Retries of an operation whose channel or connection broke under it. */
  operationRetries?: number;
  /**
   * Longest wait for the broker's answer to one operation (a channel's RPCs and confirms, a
   * connection's handshake). Past it the operation fails as a lost connection would (retriable):
   * a reply that is never coming — a connection reset between a request and its answer — must
   * not hold a reconcile forever.
   */
  operationTimeoutMs?: number;
}

/** Default of BrokerPoolOptions.operationTimeoutMs. */
export const BROKER_OPERATION_TIMEOUT_MS = 15_000;
/** A channel's close waits this long for the broker's CloseOk (nothing depends on it). */
const CHANNEL_CLOSE_WAIT_MS = 2_000;

interface BrokerEntry {
  conn?: ChannelModel;
  connecting?: Promise<ChannelModel>;
  channels: Map<string, Promise<ConfirmChannel>>;
}

export class BrokerPool {
  readonly #brokers = new Map<string, BrokerEntry>();
  readonly #opts: BrokerPoolOptions;
  #closed = false;

  constructor(options: BrokerPoolOptions = {}) {
    this.#opts = options;
  }

  /** Number of open connections (one per broker URL in use). */
  get connectionCount(): number {
    return [...this.#brokers.values()].filter((b) => b.conn).length;
  }

  /**
   * Runs `fn` on the owner's channel. Connection loss and channel closure caused by the
   * broker going away are retried on a fresh channel; protocol errors (404, 406, 403) are not
   * retried and surface as Ms2mError with the matching reason. The owner's channel is dropped
   * after any error, so the next call starts clean.
   */
  async withChannel<T>(url: string, owner: string, fn: (ch: ConfirmChannel) => Promise<T>): Promise<T> {
    const retries = this.#opts.operationRetries ?? 3;
    for (let attempt = 0; ; attempt++) {
      let ch: ConfirmChannel | undefined;
      try {
        ch = await this.#bounded(this.#channel(url, owner), "opening a channel");
        return await this.#bounded(fn(ch), "an operation");
      } catch (raw) {
        const err = toMs2mError(raw);
        this.#dropChannel(url, owner, ch);
        if (!err.retriable || attempt >= retries || this.#closed) throw err;
        await sleep(backoffDelay(attempt + 1, this.#opts.reconnect));
      }
    }
  }

  /** Runs `fn` on a channel of its own, closed afterwards: for probes that may 404 on purpose. */
  async withTemporaryChannel<T>(url: string, fn: (ch: ConfirmChannel) => Promise<T>): Promise<T> {
    const conn = await this.#connection(url);
    let ch: ConfirmChannel;
    try {
      ch = await this.#bounded(conn.createConfirmChannel(), "opening a channel");
    } catch (raw) {
      throw toMs2mError(raw);
    }
    ch.on("error", () => undefined);
    try {
      return await this.#bounded(fn(ch), "an operation");
    } catch (raw) {
      throw toMs2mError(raw);
    } finally {
      await closeChannel(ch);
    }
  }

  /** Closes the owner's channel (end of a migration). */
  async release(url: string, owner: string): Promise<void> {
    const entry = this.#brokers.get(url);
    const pending = entry?.channels.get(owner);
    entry?.channels.delete(owner);
    if (pending) await pending.then(closeChannel, () => undefined);
  }

  /** `p`, or a retriable ServiceUnavailable once the broker has not answered in time. */
  #bounded<T>(p: Promise<T>, what: string): Promise<T> {
    const ms = this.#opts.operationTimeoutMs ?? BROKER_OPERATION_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Ms2mError("ServiceUnavailable", `the broker did not answer ${what} within ${ms} ms`)),
        ms,
      );
    });
    p.catch(() => undefined); // settles after the deadline: nobody awaits it any more
    return Promise.race([p, late]).finally(() => clearTimeout(timer));
  }

  async close(): Promise<void> {
    this.#closed = true;
    const entries = [...this.#brokers.values()];
    this.#brokers.clear();
    await Promise.all(entries.map((e) => e.conn?.close().catch(() => undefined)));
  }

  async #channel(url: string, owner: string): Promise<ConfirmChannel> {
    const entry = this.#entry(url);
    let pending = entry.channels.get(owner);
    if (!pending) {
      pending = this.#openChannel(url, owner);
      entry.channels.set(owner, pending);
      pending.catch(() => entry.channels.get(owner) === pending && entry.channels.delete(owner));
    }
    return pending;
  }

  async #openChannel(url: string, owner: string): Promise<ConfirmChannel> {
    const conn = await this.#connection(url);
    const ch = await conn.createConfirmChannel();
    ch.on("error", (err: Error) => {
      this.#opts.logger?.warn({ owner, broker: redactUrl(url), err: err.message }, "AMQP channel error");
    });
    ch.on("close", () => this.#dropChannel(url, owner, ch));
    return ch;
  }

  #dropChannel(url: string, owner: string, ch: ConfirmChannel | undefined): void {
    const entry = this.#brokers.get(url);
    const pending = entry?.channels.get(owner);
    if (!entry || !pending) return;
    if (ch === undefined) {
      entry.channels.delete(owner);
      return;
    }
    void pending.then((current) => {
      if (current === ch && entry.channels.get(owner) === pending) entry.channels.delete(owner);
    });
  }

  #entry(url: string): BrokerEntry {
    if (this.#closed)
      throw new Ms2mError("ServiceUnavailable", "broker pool is closed", { retriable: false });
    let entry = this.#brokers.get(url);
    if (!entry) {
      entry = { channels: new Map() };
      this.#brokers.set(url, entry);
    }
    return entry;
  }

  async #connection(url: string): Promise<ChannelModel> {
    const entry = this.#entry(url);
    if (entry.conn) return entry.conn;
    entry.connecting ??= this.#connectWithBackoff(url, entry).finally(() => {
      entry.connecting = undefined;
    });
    return entry.connecting;
  }

  async #connectWithBackoff(url: string, entry: BrokerEntry): Promise<ChannelModel> {
    const attempts = this.#opts.connectAttempts ?? 5;
    let last: unknown;
    for (let attempt = 1; attempt <= attempts && !this.#closed; attempt++) {
      try {
        // The socket's timeout bounds the TCP connect and the AMQP handshake (amqplib clears it
        // once the connection is open).
        const conn = await connect(url, {
          timeout: this.#opts.operationTimeoutMs ?? BROKER_OPERATION_TIMEOUT_MS,
        });
        conn.on("error", () => undefined); // 'close' follows
        conn.on("close", (err?: Error) => {
          if (entry.conn !== conn) return;
          entry.conn = undefined;
          entry.channels.clear();
          if (!this.#closed)
            this.#opts.logger?.warn({ broker: redactUrl(url), err: err?.message }, "broker connection lost");
        });
        entry.conn = conn;
        this.#opts.logger?.info({ broker: redactUrl(url) }, "broker connected");
        return conn;
      } catch (err) {
        last = err;
        if (attempt < attempts) await sleep(backoffDelay(attempt, this.#opts.reconnect));
      }
    }
    throw new Ms2mError(
      "ServiceUnavailable",
      `cannot connect to broker ${redactUrl(url)}: ${errorText(last)}`,
      {
        cause: last,
      },
    );
  }
}

/** Closes a channel without waiting long for the broker's CloseOk (a dead connection never sends it). */
async function closeChannel(ch: ConfirmChannel): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    ch.close().catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, CHANNEL_CLOSE_WAIT_MS))),
  ]);
  clearTimeout(timer);
}

// amqplib's connection errors never contain the URL; keep it that way by printing only the message.
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
