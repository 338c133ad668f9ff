// kubectl ms2m: the plugin's commands. `main(argv, io)` returns the exit code (0 ok, 1 the
// operation failed or found a problem, 2 a usage error), so the tests run it in-process too.
import { parseArgs } from "node:util";
import { describeError } from "../common/errors.ts";
import { UsageError, type Command, type CommandContext, type Flags, type Options } from "./command.ts";
import { connect, type Kube } from "./kube.ts";
import type { Io, OutputFormat } from "./output.ts";
import { cancelCommand } from "./commands/cancel.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { logsCommand } from "./commands/logs.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { statusCommand } from "./commands/status.ts";
import { VERSION } from "./version.ts";

/** Flags every command takes (kubectl passes none of its own to a plugin: they are ours). */
const globalOptions = {
  namespace: { type: "string", short: "n" },
  kubeconfig: { type: "string" },
  context: { type: "string" },
  output: { type: "string", short: "o" },
  help: { type: "boolean", short: "h" },
} satisfies Options;

export const commands: Command[] = [migrateCommand, statusCommand, cancelCommand, logsCommand, doctorCommand];

const GLOBAL_HELP = `Global flags:
  -n, --namespace NS     namespace (default: the kubeconfig context's, else default)
      --kubeconfig FILE  kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)
      --context NAME     kubeconfig context
  -o, --output FORMAT    json or yaml instead of the human output
  -h, --help             this help`;

export function rootHelp(): string {
  const width = Math.max("version".length, ...commands.map((c) => c.name.length));
  return [
    "kubectl ms2m: live migration of stateful, message-consuming pods with ms2m.",
    "",
    "Moves a running pod to another node without losing its in-memory state or a message: the",
    "container is checkpointed, sent to the target node, restored there, and the messages that",
    "arrived meanwhile are replayed before the cutover (a StatefulMigration does it; this plugin",
    "creates, follows and explains them).",
    "",
    "Usage:",
    "  kubectl ms2m COMMAND [ARGS] [flags]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${"version".padEnd(width)}  Print the plugin's version`,
    "",
    "Examples:",
    "  kubectl ms2m doctor                                    # is this cluster ready?",
    "  kubectl ms2m migrate consumer-7d9f8b6c5-x2lqz --to node-b --wait \\",
    "      --queue orders --exchange orders.fanout --broker-secret rabbitmq-url",
    "  kubectl ms2m status                                    # the namespace's migrations",
    "",
    "Run 'kubectl ms2m COMMAND --help' for a command's flags, examples and exit codes.",
    "",
    GLOBAL_HELP,
    "",
  ].join("\n");
}

export function commandHelp(c: Command): string {
  const codes = Object.entries({ ...c.exitCodes, 2: "usage error: a flag or argument is wrong" })
    .map(([code, what]) => `  ${code}  ${what}`)
    .join("\n");
  return [
    `kubectl ms2m ${c.name}: ${c.summary}`,
    "",
    c.description,
    "",
    "Usage:",
    `  ${c.usage}`,
    "",
    ...(c.flags ? ["Flags:", c.flags, ""] : []),
    "Examples:",
    c.examples,
    "",
    "Exit codes:",
    codes,
    "",
    GLOBAL_HELP,
    "",
  ].join("\n");
}

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (!name) {
    io.err(rootHelp());
    return 2;
  }
  if (name === "help" || name === "--help" || name === "-h") {
    const topic = commands.find((c) => c.name === rest[0]);
    io.out(topic ? commandHelp(topic) : rootHelp());
    return 0;
  }
  if (name === "version" || name === "--version") {
    io.out(`kubectl-ms2m ${VERSION}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.err(
      `error: unknown command "${name}" for "kubectl ms2m"\nSee 'kubectl ms2m --help' for the commands.\n`,
    );
    return 2;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...globalOptions, ...command.options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    io.err(`error: ${describeError(err)}\nSee 'kubectl ms2m ${command.name} --help'.\n`);
    return 2;
  }
  const flags = parsed.values as Flags;
  if (flags.help) {
    io.out(commandHelp(command));
    return 0;
  }
  const output = flags.output as string | undefined;
  if (output !== undefined && output !== "json" && output !== "yaml") {
    io.err(
      `error: --output must be json or yaml (got "${output}")\nSee 'kubectl ms2m ${command.name} --help'.\n`,
    );
    return 2;
  }
  const { min, max } = command.positionals;
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    const got = parsed.positionals.length;
    const want = min === max ? `${min}` : min === 0 ? `at most ${max}` : `${min} to ${max}`;
    io.err(
      `error: ${command.name} takes ${want} argument${max === 1 ? "" : "s"}, got ${got}${got ? ` (${parsed.positionals.join(" ")})` : ""}\n` +
        `Usage: ${command.usage}\nSee 'kubectl ms2m ${command.name} --help'.\n`,
    );
    return 2;
  }
  let kube: Kube | undefined;
  const ctx: CommandContext = {
    io,
    kube: () =>
      (kube ??= connect({
        kubeconfig: flags.kubeconfig as string | undefined,
        context: flags.context as string | undefined,
        namespace: flags.namespace as string | undefined,
      })),
    namespaceFlag: flags.namespace as string | undefined,
    format: (output as OutputFormat | undefined) ?? "human",
  };
  try {
    return await command.run(ctx, parsed.positionals, flags);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}\nSee 'kubectl ms2m ${command.name} --help'.\n`);
      return 2;
    }
    io.err(`error: ${describeError(err)}\n`);
    return 1;
  } finally {
    await kube?.close();
  }
}
