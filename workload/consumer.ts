// Reference consumer built on the SDK: in-memory state (count, last sequence, checksum) and a
// final state dump for the accounting check. Runs under both runtimes:
//  - real nodes (CRIU): nothing to serialise; the SDK notices the restore itself (new pod identity
//    from the Downward API) and the consumer switches its per-pod files in onRestored;
//  - the node simulator: its cooperative checkpoint contract (src/sdk/simulated-runtime.ts).
//
//   AMQP_URL=amqp://... EXCHANGE=ms2m.demo QUEUE=ms2m.demo.q node workload/consumer.ts
// The pod identity: MS2M_POD_NAME_FILE (default /etc/podinfo/name), else POD_NAME (then a CRIU
// restore goes unnoticed). Output files, each optional:
//   STATE_DIR=/dir        final state at shutdown in <dir>/<pod>.json, <pod> read at that moment
//   APPLIED_LOG_DIR=/dir  "<epoch ms> <seq>" per applied message in <dir>/<pod>.applied
//   STATE_FILE=/path, APPLIED_LOG=/path  the same at a fixed path (a restored process inherits
//                         the path, which the kubelet expanded with the *source* pod's name)
// BALLAST_MB=N keeps N MiB of written (resident) buffers alive, so a checkpoint has that much
// more memory to dump (bench/checkpoint: checkpoint and restore time against process memory).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { loadConfigOrExit } from "../src/common/config.ts";
import { createLogger } from "../src/common/logger.ts";
import {
  MigratingConsumer,
  type ConsumerSnapshot,
  type MigratingConsumerOptions,
} from "../src/sdk/consumer.ts";
import { readPodIdentity } from "../src/sdk/pod-identity.ts";
import { loadRestoredState, serveCheckpoints } from "../src/sdk/simulated-runtime.ts";
import { LineLog } from "./line-log.ts";
import { AppState, type WorkloadState } from "./state.ts";
import { declareWorkloadTopology, type SequencedMessage } from "./topology.ts";

/**
 * The state image: JSON of this. The simulator's checkpoint bytes, and the final state dump. The
 * queue travels with the state (a restored process keeps its configuration).
 */
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
  /** Simulated runtime: bytes from a checkpoint to restore from (then wait for START_REPLAY). */
  restoredFrom?: Uint8Array;
  podIdentity?: MigratingConsumerOptions["podIdentity"];
  podName?: () => string;
  onRestored?: MigratingConsumerOptions["onRestored"];
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
      podIdentity: options.podIdentity,
      podName: options.podName,
      onRestored: options.onRestored,
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

  /** The state image, taken between two messages. */
  async checkpoint(): Promise<Buffer> {
    const { app, sdk } = await this.consumer.snapshot(() => this.state.toJSON());
    const image: CheckpointImage = { app, sdk, exchange: this.exchange, queue: this.queue };
    return Buffer.from(JSON.stringify(image));
  }

  close(): Promise<void> {
    return this.consumer.close();
  }
}

/** Memory held for the process's life (BALLAST_MB): referenced here so it is never collected. */
const ballast: Buffer[] = [];

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const config = loadConfigOrExit(
    "consumer",
    z.object({
      AMQP_URL: z.string().min(1),
      EXCHANGE: z.string().default("ms2m.demo"),
      QUEUE: z.string().default("ms2m.demo.queue"),
      PREFETCH: z.coerce.number().int().positive().default(100),
      STATE_DIR: z.string().optional(),
      APPLIED_LOG_DIR: z.string().optional(),
      STATE_FILE: z.string().optional(),
      APPLIED_LOG: z.string().optional(),
      BALLAST_MB: z.coerce.number().int().min(0).max(65_536).default(0),
    }),
  );
  const log = createLogger("consumer");
  if (config.BALLAST_MB > 0) {
    ballast.push(...allocateBallast(config.BALLAST_MB));
    log.info({ ballastMiB: config.BALLAST_MB }, "ballast allocated");
  }
  const logError = (err: Error, path: string) => log.warn({ err: err.message, path }, "cannot write log");
  for (const dir of [config.STATE_DIR, config.APPLIED_LOG_DIR]) if (dir) mkdirSync(dir, { recursive: true });
  const fixedLog = config.APPLIED_LOG ? new LineLog(logError).open(config.APPLIED_LOG) : undefined;
  const appliedDir = config.APPLIED_LOG_DIR;
  const podLog = appliedDir ? new LineLog(logError) : undefined;
  const podLogPath = (pod: string) => join(appliedDir ?? ".", `${pod}.applied`);

  const app: ReferenceConsumer = new ReferenceConsumer({
    url: config.AMQP_URL,
    exchange: config.EXCHANGE,
    queue: config.QUEUE,
    prefetch: config.PREFETCH,
    restoredFrom: loadRestoredState(), // simulated runtime only; before consuming anything
    logger: log,
    onRestored: ({ previousPod, pod }) => {
      log.info({ previousPod, pod }, "consumer restored");
      podLog?.open(podLogPath(pod));
    },
    onApplied: (seq) => {
      const line = `${Date.now()} ${seq}\n`;
      fixedLog?.write(line);
      if (podLog) {
        // First message: the SDK knows its pod by now (it reads it before consuming).
        if (!podLog.path) podLog.open(podLogPath(app.consumer.podName));
        podLog.write(line);
      }
    },
  });
  const server = await serveCheckpoints(() => app.checkpoint()); // simulated runtime only
  const shutdown = async () => {
    const image = await app.checkpoint();
    if (config.STATE_FILE) writeFileSync(config.STATE_FILE, image);
    if (config.STATE_DIR) writeFileSync(join(config.STATE_DIR, `${currentPod(app)}.json`), image);
    await server?.close();
    await app.close();
    await Promise.all([fixedLog?.close(), podLog?.close()]);
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

/**
 * `mib` MiB in 1 MiB buffers outside the V8 heap, every page written (non-zero: untouched or
 * zero-mapped pages are not resident and CRIU would not dump them).
 */
export function allocateBallast(mib: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < mib; i++) {
    const b = Buffer.allocUnsafeSlow(1 << 20);
    b.fill((i % 255) + 1);
    out.push(b);
  }
  return out;
}

/** The pod this process runs in now (read afresh: it may have been restored since it started). */
function currentPod(app: ReferenceConsumer): string {
  try {
    return readPodIdentity().name;
  } catch {
    return app.consumer.podName || "unknown-pod";
  }
}
