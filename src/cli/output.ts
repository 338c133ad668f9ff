// What the plugin writes: where to (stdout, stderr, whether a terminal), colours (only on a
// terminal, never with NO_COLOR), tables as kubectl prints them, durations and ages.
import { stringify } from "yaml";

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** stdout is a terminal: live progress and colours. */
  tty: boolean;
  color: boolean;
  /** Terminal width (80 when unknown). */
  columns: number;
  now: () => number;
}

/** Io on the process's own streams. */
export function processIo(): Io {
  const tty = Boolean(process.stdout.isTTY);
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    tty,
    color: tty && !process.env.NO_COLOR && process.env.TERM !== "dumb",
    columns: process.stdout.columns || 80,
    now: Date.now,
  };
}

export type OutputFormat = "human" | "json" | "yaml";

export function printObject(io: Io, format: "json" | "yaml", value: unknown): void {
  io.out(format === "json" ? `${JSON.stringify(value, null, 2)}\n` : stringify(value));
}

const codes = { red: 31, green: 32, yellow: 33, blue: 34, gray: 90, bold: 1 } as const;
export type Color = keyof typeof codes;

export function paint(io: Pick<Io, "color">, color: Color, text: string): string {
  return io.color ? `\x1b[${codes[color]}m${text}\x1b[0m` : text;
}

/** Visible width (without colour codes). */
// eslint-disable-next-line no-control-regex -- the escape is what is being removed
export const visibleLength = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;

/** Columns separated by three spaces, left aligned, as `kubectl get` prints them. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => visibleLength(r[i] ?? ""))));
  return (
    all
      .map((r) =>
        r
          .map((cell, i) => (i === r.length - 1 ? cell : cell + " ".repeat(widths[i]! - visibleLength(cell))))
          .join("   ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/** 0.047 s, 2.130 s, 75.4 s */
export function seconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(3)} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** kubectl's age: 42s, 5m, 3h, 2d. */
export function age(from: string | Date | undefined, now: number): string {
  if (!from) return "";
  const s = Math.max(0, Math.floor((now - new Date(from).getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** A bar of `width` cells for value/max. */
export function bar(value: number, max: number, width = 30): string {
  if (max <= 0) return "";
  return "█".repeat(Math.max(1, Math.round((value / max) * width)));
}
