// An append-only text file that can be switched to another path while lines keep coming: the
// applied log follows the pod a (CRIU-)restored process runs in.
import { createWriteStream, type WriteStream } from "node:fs";

export class LineLog {
  readonly #onError: (err: Error, path: string) => void;
  #stream: WriteStream | undefined;
  #path: string | undefined;
  /** Streams switched away from, still flushing. */
  readonly #closing = new Set<Promise<void>>();

  constructor(onError: (err: Error, path: string) => void = () => undefined) {
    this.#onError = onError;
  }

  get path(): string | undefined {
    return this.#path;
  }

  /** Appends to `path` from now on; lines written before stay in the previous file. */
  open(path: string): this {
    if (path === this.#path) return this;
    this.#retire();
    const stream = createWriteStream(path, { flags: "a" });
    // A log that cannot be written must not take the consumer down.
    stream.on("error", (err) => this.#onError(err, path));
    this.#stream = stream;
    this.#path = path;
    return this;
  }

  write(line: string): void {
    this.#stream?.write(line);
  }

  /** Flushes and closes every file this log wrote to. */
  async close(): Promise<void> {
    this.#retire();
    this.#path = undefined;
    await Promise.all([...this.#closing]);
  }

  #retire(): void {
    const stream = this.#stream;
    if (!stream) return;
    this.#stream = undefined;
    const closed = new Promise<void>((resolve) => {
      stream.once("error", () => resolve());
      stream.end(() => resolve());
    });
    this.#closing.add(closed);
    void closed.then(() => this.#closing.delete(closed));
  }
}
