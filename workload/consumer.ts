// Reference consumer built on the SDK: in-memory state (count, last sequence, checksum), the
// simulated checkpoint/restore contract, and a final state dump for the accounting check.
//   AMQP_URL=amqp://... EXCHANGE=ms2m.demo QUEUE=ms2m.demo.q POD_NAME=x [STATE_FILE=/path] node workload/consumer.ts
// APPLIED_LOG=/path appends "<epoch ms> <seq>" per applied message (the demo's downtime measure).
import { createWriteStream, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { loadConfigOrExit } from "../src/common/config.ts";
import { createLogger } from "../src/common/logger.ts";
import { loadRestoredState, serveCheckpoints } from "../src/sdk/checkpoint.ts";
import {
  MigratingConsumer,
  type ConsumerSnapshot,
  type MigratingConsumerOptions,
} from "../src/sdk/consumer.ts";
import { AppState, type WorkloadState } from "./state.ts";
import { declareWorkloadTopology, type SequencedMessage } from "./topology.ts";

/** Checkpoint bytes: JSON of this. The queue travels with the state (a restored process keeps its config). */
export interface CheckpointImage {
  app: WorkloadState;
  sdk: ConsumerSnapshot;
  exchange: string;
  queue: string;
}

export interface ReferenceConsumerOptions {
  url: string;
  exchange: string;
  queue: string;
  /** Bytes from a checkpoint: restore from them (and wait for START_REPLAY). */
  restoredFrom?: Uint8Array;
  podName?: () => string;
  prefetch?: number;
  progressIntervalMs?: number;
  logger?: MigratingConsumerOptions["logger"];
  /** Called after each message is applied to the state. */
  onApplied?: (seq: number) => void;
}

export class ReferenceConsumer {
  readonly state: AppState;
  readonly consumer: MigratingConsumer;
  readonly exchange: string;
  readonly queue: string;

  constructor(options: ReferenceConsumerOptions) {
    const image = options.restoredFrom
      ? (JSON.parse(Buffer.from(options.restoredFrom).toString("utf8")) as CheckpointImage)
      : undefined;
    this.state = image ? AppState.from(image.app) : new AppState();
    this.exchange = image?.exchange ?? options.exchange;
    this.queue = image?.queue ?? options.queue;
    this.consumer = new MigratingConsumer({
      url: options.url,
      queue: this.queue,
      restored: image?.sdk,
      podName: options.podName,
      prefetch: options.prefetch,
      progressIntervalMs: options.progressIntervalMs,
      logger: options.logger,
      setup: (ch) => declareWorkloadTopology(ch, this.exchange, this.queue),
      handler: (msg) => {
        const body = JSON.parse(msg.content.toString("utf8")) as SequencedMessage;
        this.state.apply(body.seq);
        options.onApplied?.(body.seq);
      },
    });
  }

  start(): Promise<void> {
    return this.consumer.start();
  }

  /** The checkpoint image, taken between two messages. */
  async checkpoint(): Promise<Buffer> {
    const { app, sdk } = await this.consumer.snapshot(() => this.state.toJSON());
    const image: CheckpointImage = { app, sdk, exchange: this.exchange, queue: this.queue };
    return Buffer.from(JSON.stringify(image));
  }

  close(): Promise<void> {
    return this.consumer.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const config = loadConfigOrExit(
    "consumer",
    z.object({
      AMQP_URL: z.string().min(1),
      EXCHANGE: z.string().default("ms2m.demo"),
      QUEUE: z.string().default("ms2m.demo.queue"),
      PREFETCH: z.coerce.number().int().positive().default(100),
      STATE_FILE: z.string().optional(),
      APPLIED_LOG: z.string().optional(),
    }),
  );
  const log = createLogger("consumer");
  const applied = config.APPLIED_LOG ? createWriteStream(config.APPLIED_LOG, { flags: "a" }) : undefined;
  const app = new ReferenceConsumer({
    url: config.AMQP_URL,
    exchange: config.EXCHANGE,
    queue: config.QUEUE,
    prefetch: config.PREFETCH,
    restoredFrom: loadRestoredState(), // before consuming anything
    logger: log,
    onApplied: applied ? (seq) => applied.write(`${Date.now()} ${seq}\n`) : undefined,
  });
  const server = await serveCheckpoints(() => app.checkpoint());
  const shutdown = async () => {
    const image = await app.checkpoint();
    if (config.STATE_FILE) writeFileSync(config.STATE_FILE, image);
    await server?.close();
    await app.close();
    await new Promise<void>((resolve) => (applied ? applied.end(resolve) : resolve()));
    log.info(
      { count: app.state.count, lastSeq: app.state.lastSeq, ...app.consumer.metrics() },
      "consumer stopped",
    );
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown());
  process.on("SIGINT", () => void shutdown());
  await app.start();
  log.info({ queue: app.queue, pod: app.consumer.podName, mode: app.consumer.mode }, "consumer started");
  setInterval(() => {
    log.info(
      {
        count: app.state.count,
        lastSeq: app.state.lastSeq,
        checksum: app.state.checksum,
        ...app.consumer.metrics(),
      },
      "state",
    );
  }, 10_000).unref();
}
