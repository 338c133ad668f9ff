// Streaming receive: bytes are counted, hashed and inspected as they flow to disk. The archive
// is never held in memory, and a failure leaves no file behind.
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Ms2mError } from "../common/errors.ts";
import { isDigest } from "./image.ts";
import { CheckpointLayout, type LayoutSummary } from "./layout.ts";
import { TarInspector, type TarLimits } from "./tar-inspect.ts";

export interface ReceiveOptions {
  /** Hard upper bound: more bytes than this fail with 413 as soon as they arrive. */
  maxBytes: number;
  /** Declared size: more bytes fail at once, fewer fail at the end (truncated). */
  expectedSize?: number | undefined;
  /**
   * Declared sha256 digest. A function is called after the last byte, so the digest may arrive
   * after the body (an HTTP trailer). Required: a missing digest fails with 400.
   */
  expectedDigest: string | undefined | (() => string | undefined);
  /** Inspect the tar stream (default true). */
  inspect?: boolean;
  /** Check the CRI-O checkpoint layout (layout.ts) too (default: when inspecting). */
  layout?: boolean;
  tarLimits?: Partial<TarLimits>;
  signal?: AbortSignal | undefined;
  /** Called with every chunk's length (metrics, progress). */
  onBytes?: (n: number) => void;
  /**
   * Destroy a Readable source on failure (default true). An HTTP server passes false so it can
   * still answer on the same connection.
   */
  destroySource?: boolean;
}

export interface ReceivedArchive {
  digest: string;
  size: number;
  entries: number;
}

/**
 * Counts, hashes and (optionally) tar-inspects every chunk that passes through. `hash: false`
 * when the digest is already known and the receiver verifies it (a sender of a recorded
 * checkpoint): one sha256 pass less per transfer.
 */
export class StreamMeter {
  readonly hash: Hash | null;
  size = 0;
  readonly inspector: TarInspector | null;
  readonly layout: CheckpointLayout | null;
  private readonly limit: number;
  private readonly declared: number | undefined;

  constructor(opts: {
    maxBytes: number;
    expectedSize?: number | undefined;
    inspect?: boolean;
    /** Check the checkpoint layout as well (default: when inspecting). */
    layout?: boolean;
    hash?: boolean;
    tarLimits?: Partial<TarLimits>;
  }) {
    this.hash = opts.hash === false ? null : createHash("sha256");
    this.limit = opts.maxBytes;
    this.declared = opts.expectedSize;
    const limits = { maxEntryBytes: opts.maxBytes, ...opts.tarLimits };
    this.layout =
      opts.inspect !== false && opts.layout !== false
        ? new CheckpointLayout(limits.maxEntries !== undefined ? { maxEntries: limits.maxEntries } : {})
        : null;
    const layout = this.layout;
    this.inspector =
      opts.inspect === false ? null : new TarInspector(limits, layout ? (e) => layout.entry(e) : undefined);
  }

  update(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.limit) {
      throw new Ms2mError("RequestEntityTooLarge", `archive exceeds the maximum of ${this.limit} bytes`);
    }
    if (this.declared !== undefined && this.size > this.declared) {
      throw new Ms2mError("BadRequest", `archive is longer than its declared size ${this.declared}`);
    }
    this.hash?.update(chunk);
    this.inspector?.write(chunk);
  }

  /** Finishes: checks declared size, tar completeness and returns the digest ("" when not hashing). */
  finish(): { digest: string; size: number; entries: number } {
    if (this.declared !== undefined && this.size !== this.declared) {
      throw new Ms2mError("BadRequest", `truncated archive: ${this.size} of ${this.declared} declared bytes`);
    }
    this.inspector?.end();
    return {
      digest: this.hash ? `sha256:${this.hash.digest("hex")}` : "",
      size: this.size,
      entries: this.inspector?.entries ?? 0,
    };
  }

  /**
   * The archive is a complete CRI-O checkpoint (after `finish`): what is required is there and
   * parsed. Throws an Invalid Ms2mError otherwise.
   */
  verifyLayout(): LayoutSummary | undefined {
    return this.layout?.finish();
  }

  /** An async-generator stage for stream.pipeline. */
  stage(): (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer> {
    return async function* (this: StreamMeter, source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        this.update(chunk);
        yield chunk;
      }
    }.bind(this);
  }
}

/** Checks a declared digest against the computed one. */
export function checkDigest(declared: string | undefined, actual: string): void {
  if (declared === undefined || declared === "") {
    throw new Ms2mError("BadRequest", "missing declared archive digest");
  }
  if (!isDigest(declared)) throw new Ms2mError("BadRequest", "declared digest must be sha256:<64 hex>");
  if (declared !== actual) {
    throw new Ms2mError("BadRequest", `digest mismatch: declared ${declared}, received ${actual}`);
  }
}

/**
 * Streams `source` into `dest` (created exclusively, mode 0600) while counting, hashing and
 * inspecting. On any failure the partial file is removed and an Ms2mError is thrown.
 */
export async function receiveArchive(
  source: Readable | AsyncIterable<Buffer>,
  dest: string,
  opts: ReceiveOptions,
): Promise<ReceivedArchive> {
  const meter = new StreamMeter({
    maxBytes: opts.maxBytes,
    expectedSize: opts.expectedSize,
    inspect: opts.inspect ?? true,
    layout: opts.layout ?? true,
    tarLimits: opts.tarLimits ?? {},
  });
  const onBytes = opts.onBytes;
  const out = createWriteStream(dest, { flags: "wx", mode: 0o600, highWaterMark: 1024 * 1024 });
  try {
    const input =
      opts.destroySource === false && "iterator" in source && typeof source.iterator === "function"
        ? (source as Readable).iterator({ destroyOnReturn: false })
        : source;
    await pipeline(
      input,
      async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          meter.update(chunk);
          onBytes?.(chunk.length);
          yield chunk;
        }
      },
      out,
      opts.signal ? { signal: opts.signal } : {},
    );
    const result = meter.finish();
    const declared = typeof opts.expectedDigest === "function" ? opts.expectedDigest() : opts.expectedDigest;
    checkDigest(declared, result.digest);
    meter.verifyLayout();
    return result;
  } catch (err) {
    out.destroy();
    await rm(dest, { force: true });
    if (err instanceof Ms2mError) throw err;
    if (opts.signal?.aborted) {
      const reason: unknown = opts.signal.reason;
      if (reason instanceof Ms2mError) throw reason;
      throw new Ms2mError("ServiceUnavailable", "transfer aborted", { cause: err });
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === "string" && code.startsWith("UND_ERR")) {
      // The sender's connection (registry blob) failed or stalled (undici's body timeout).
      throw new Ms2mError("ServiceUnavailable", `receiving archive failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ECONNRESET" || code === "ABORT_ERR") {
      throw new Ms2mError("BadRequest", "stream ended prematurely (connection closed)", {
        cause: err,
        retriable: true,
      });
    }
    throw new Ms2mError(
      "InternalError",
      `receiving archive failed: ${String((err as Error).message ?? err)}`,
      {
        cause: err,
      },
    );
  }
}

/** Reads a file once and returns its sha256 digest and size (for tests and tools). */
export async function digestFile(path: string): Promise<{ digest: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: `sha256:${hash.digest("hex")}`, size };
}
