// What a command of the plugin is, and the error that means "wrong usage" (exit 2).
import type { ParseArgsConfig } from "node:util";
import type { Kube } from "./kube.ts";
import type { Io, OutputFormat } from "./output.ts";

export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig["options"]>;
export type Flags = Record<string, string | boolean | string[] | undefined>;

export interface CommandContext {
  io: Io;
  /** Connects on first use (help and usage errors need no cluster). */
  kube: () => Kube;
  /** -n given explicitly (else the kubeconfig context's namespace applies). */
  namespaceFlag: string | undefined;
  format: OutputFormat;
  /** -A / --all-namespaces, where a command takes it. */
  allNamespaces?: boolean;
}

export interface Command {
  name: string;
  /** One line, for the list of commands. */
  summary: string;
  /** `kubectl ms2m NAME ARGS [flags]`. */
  usage: string;
  /** What it does, a few lines. */
  description: string;
  /** The command's flags, one per line (`  --flag VALUE   what it does`). */
  flags: string;
  /** `# what` lines followed by the command. */
  examples: string;
  /** Exit code → meaning. */
  exitCodes: Record<number, string>;
  /** The command's own flags. */
  options: Options;
  positionals: { min: number; max: number };
  run(ctx: CommandContext, args: string[], flags: Flags): Promise<number>;
}
