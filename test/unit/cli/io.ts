// An Io that records what the plugin writes (no terminal, no colours unless asked).
import type { Io } from "../../../src/cli/output.ts";

export interface RecordingIo extends Io {
  stdout: string;
  stderr: string;
}

export function recordingIo(options: Partial<Pick<Io, "tty" | "color" | "now">> = {}): RecordingIo {
  const io: RecordingIo = {
    stdout: "",
    stderr: "",
    out: (t) => void (io.stdout += t),
    err: (t) => void (io.stderr += t),
    tty: options.tty ?? false,
    color: options.color ?? false,
    columns: 80,
    now: options.now ?? (() => Date.parse("2026-01-01T00:01:00Z")),
  };
  return io;
}
