// Reference producer: sequence-numbered, persistent messages to a fan-out exchange at a set
// rate (1..200 msg/s), publisher-confirmed. A sequence number counts as published only once the
// broker confirmed it; those are what the accounting check compares against.
//   AMQP_URL=amqp://... EXCHANGE=ms2m.demo RATE=50 [COUNT=1000] [PRODUCER_LOG=/path] node workload/producer.ts
import { appendFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { connect, type ChannelModel, type ConfirmChannel } from "amqplib";
import { z } from "zod";
import { loadConfigOrExit } from "../src/common/config.ts";
import { createLogger } from "../src/common/logger.ts";
import { backoffDelay, sleep } from "../src/common/backoff.ts";
import { declareWorkloadTopology, messageId, type SequencedMessage } from "./topology.ts";

export const MAX_RATE = 200;

export interface ProducerOptions {
  url: string;
  exchange: string;
  /** Messages per second, 1..200 (0 pauses). */
  rate: number;
  producerId?: string;
  /** Stop after this many sequence numbers. */
  count?: number;
  onConfirmed?: (seq: number) => void;
}

export class Producer {
  readonly #opts: ProducerOptions;
  readonly #confirmed: number[] = [];
  #rate: number;
  #nextSeq = 1;
  #stopped = false;
  #conn: ChannelModel | undefined;
  #ch: ConfirmChannel | undefined;
  #loop: Promise<void> | undefined;
  #pending = new Set<Promise<void>>();

  constructor(options: ProducerOptions) {
    this.#opts = options;
    this.#rate = checkRate(options.rate);
  }

  /** Confirmed sequence numbers so far, in confirm order. */
  get confirmed(): readonly number[] {
    return this.#confirmed;
  }

  get attempted(): number {
    return this.#nextSeq - 1;
  }

  setRate(rate: number): void {
    this.#rate = checkRate(rate);
  }

  async start(): Promise<void> {
    await this.#connect();
    this.#loop = this.#run();
  }

  /** Stops publishing and waits for outstanding confirms. */
  async stop(): Promise<readonly number[]> {
    this.#stopped = true;
    await this.#loop;
    await Promise.allSettled([...this.#pending]);
    await this.#conn?.close().catch(() => undefined);
    return this.#confirmed;
  }

  /** Resolves once `count` messages were attempted (or immediately without a count). */
  async done(): Promise<void> {
    await this.#loop;
  }

  async #connect(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const conn = await connect(this.#opts.url);
        conn.on("error", () => undefined);
        conn.on("close", () => {
          if (this.#conn === conn) this.#ch = undefined;
        });
        const ch = await conn.createConfirmChannel();
        ch.on("error", () => undefined);
        await declareWorkloadTopology(ch, this.#opts.exchange);
        this.#conn = conn;
        this.#ch = ch;
        return;
      } catch (err) {
        if (this.#stopped) throw err;
        await sleep(backoffDelay(attempt));
      }
    }
  }

  async #run(): Promise<void> {
    let windowStart = performance.now();
    let sentInWindow = 0;
    let windowRate = this.#rate;
    while (!this.#stopped && (this.#opts.count === undefined || this.#nextSeq <= this.#opts.count)) {
      if (!this.#ch) {
        await this.#connect().catch(() => undefined);
        windowStart = performance.now();
        sentInWindow = 0;
        continue;
      }
      if (windowRate !== this.#rate) {
        windowRate = this.#rate;
        windowStart = performance.now();
        sentInWindow = 0;
      }
      if (windowRate === 0) {
        await sleep(10);
        continue;
      }
      // Pace against the clock, not per-message sleeps, so the rate holds despite timer jitter.
      const due = Math.floor(((performance.now() - windowStart) / 1000) * windowRate) + 1;
      if (sentInWindow >= due) {
        await sleep(
          Math.max(1, ((sentInWindow / windowRate) * 1000 - (performance.now() - windowStart)) | 0),
        );
        continue;
      }
      this.#publish(this.#ch, this.#nextSeq++);
      sentInWindow++;
    }
  }

  #publish(ch: ConfirmChannel, seq: number): void {
    const producer = this.#opts.producerId ?? "p1";
    const body: SequencedMessage = { seq, producer, at: Date.now() };
    const confirmed = new Promise<void>((resolve) => {
      try {
        ch.publish(
          this.#opts.exchange,
          "",
          Buffer.from(JSON.stringify(body)),
          {
            persistent: true,
            messageId: messageId(producer, seq),
            contentType: "application/json",
          },
          (err: unknown) => {
            if (!err) {
              this.#confirmed.push(seq);
              this.#opts.onConfirmed?.(seq);
            }
            resolve();
          },
        );
      } catch {
        resolve(); // channel closed: never confirmed, so not counted as published
      }
    });
    this.#pending.add(confirmed);
    void confirmed.then(() => this.#pending.delete(confirmed));
  }
}

function checkRate(rate: number): number {
  if (!Number.isFinite(rate) || rate < 0 || rate > MAX_RATE)
    throw new RangeError(`rate must be within 0..${MAX_RATE} msg/s`);
  return rate;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const config = loadConfigOrExit(
    "producer",
    z.object({
      AMQP_URL: z.string().min(1),
      EXCHANGE: z.string().default("ms2m.demo"),
      RATE: z.coerce.number().min(1).max(MAX_RATE).default(10),
      COUNT: z.coerce.number().int().positive().optional(),
      PRODUCER_ID: z.string().default("p1"),
      PRODUCER_LOG: z.string().optional(),
    }),
  );
  const log = createLogger("producer");
  const producer = new Producer({
    url: config.AMQP_URL,
    exchange: config.EXCHANGE,
    rate: config.RATE,
    count: config.COUNT,
    producerId: config.PRODUCER_ID,
    onConfirmed: config.PRODUCER_LOG ? (seq) => appendFileSync(config.PRODUCER_LOG!, `${seq}\n`) : undefined,
  });
  const stop = async () => {
    const confirmed = await producer.stop();
    log.info({ confirmed: confirmed.length }, "producer stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  await producer.start();
  log.info({ exchange: config.EXCHANGE, rate: config.RATE }, "producer started");
  await producer.done();
  await stop();
}
