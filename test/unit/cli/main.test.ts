import { describe, expect, it } from "vitest";
import { commandHelp, commands, main, rootHelp } from "../../../src/cli/main.ts";
import { VERSION } from "../../../src/cli/version.ts";
import { recordingIo } from "./io.ts";

// What the plugin does before it needs a cluster: help, version, usage errors (exit 2), and
// --dry-run. A kubeconfig that points nowhere proves no cluster was asked.
const run = async (...argv: string[]) => {
  const io = recordingIo();
  const code = await main([...argv, "--kubeconfig", "/nonexistent/kubeconfig"], io);
  return { code, out: io.stdout, err: io.stderr };
};
const bare = async (...argv: string[]) => {
  const io = recordingIo();
  const code = await main(argv, io);
  return { code, out: io.stdout, err: io.stderr };
};

describe("help", () => {
  it("lists every command with its summary; no command at all is a usage error on stderr", async () => {
    const help = await bare("--help");
    expect(help.code).toBe(0);
    expect(help.err).toBe("");
    for (const c of commands) expect(help.out).toContain(`  ${c.name.padEnd(7)}  ${c.summary}\n`);
    expect(help.out).toContain("  version  Print the plugin's version\n");
    expect(help.out).toBe(rootHelp());
    expect(await bare("help")).toEqual({ code: 0, out: rootHelp(), err: "" });
    const none = await bare();
    expect(none).toEqual({ code: 2, out: "", err: rootHelp() });
  });

  it.each(commands.map((c) => c.name))("%s --help: usage, flags, examples, exit codes", async (name) => {
    const c = commands.find((x) => x.name === name)!;
    for (const argv of [
      [name, "--help"],
      [name, "-h"],
      ["help", name],
    ]) {
      const res = await bare(...argv);
      expect(res).toEqual({ code: 0, out: commandHelp(c), err: "" });
    }
    const text = commandHelp(c);
    expect(text).toMatch(new RegExp(`^Usage:\\n  kubectl ms2m ${name}`, "m"));
    expect(text).toMatch(/^Examples:\n {2}\S/m);
    expect(text).toMatch(/^Exit codes:\n {2}0 {2}.+\n {2}1 {2}.+\n(?: {5}.+\n)? {2}2 {2}usage error/m);
    expect(text).toContain("Global flags:\n  -n, --namespace NS");
    // Every flag the command parses is explained.
    for (const flag of Object.keys(c.options)) expect(text, `--${flag}`).toContain(`--${flag}`);
    // Lines fit a terminal.
    for (const line of text.split("\n")) expect(line.length, line).toBeLessThanOrEqual(100);
  });

  it("version", async () => {
    expect(await bare("version")).toEqual({ code: 0, out: `kubectl-ms2m ${VERSION}\n`, err: "" });
    expect(await bare("--version")).toEqual({ code: 0, out: `kubectl-ms2m ${VERSION}\n`, err: "" });
  });
});

describe("usage errors: exit 2, the problem on stderr, no cluster asked", () => {
  it.each([
    [["frobnicate"], /^error: unknown command "frobnicate" for "kubectl ms2m"\n/],
    [["migrate"], /^error: migrate takes 1 argument, got 0\nUsage: kubectl ms2m migrate POD/],
    [["migrate", "a", "b"], /^error: migrate takes 1 argument, got 2 \(a b\)/],
    [["status", "a", "b"], /^error: status takes at most 1 argument, got 2/],
    [["doctor", "x"], /^error: doctor takes 0 arguments, got 1 \(x\)/],
    [["migrate", "pod", "--bogus"], /^error: Unknown option '--bogus'/],
    [["status", "-o", "wide"], /^error: --output must be json or yaml \(got "wide"\)/],
    [
      ["migrate", "pod", "--strategy", "Fast"],
      /^error: --strategy must be one of ShadowPod, Sequential \(got "Fast"\)/,
    ],
    [
      ["migrate", "pod", "--transfer", "carrier-pigeon"],
      /^error: --transfer must be one of Registry, Direct/,
    ],
    [["migrate", "pod", "--queue", "q"], /^error: --queue and --exchange go together/],
    [["migrate", "pod", "--timeout", "soon"], /^error: not a duration: "soon"/],
    [["migrate", "pod", "--replay-cutoff", "1.5"], /^error: --replay-cutoff must be whole seconds/],
    [["cancel", "m", "--timeout", "5 minutes"], /^error: not a duration/],
    [["doctor", "--agent-access", "ssh"], /^error: --agent-access must be one of auto, pod-ip, port-forward/],
    [["doctor", "--timeout", "a while"], /^error: not a duration/],
  ])("%j", async (argv, message) => {
    const res = await run(...argv);
    expect(res.code).toBe(2);
    expect(res.out).toBe("");
    expect(res.err).toMatch(message);
    expect(res.err).toMatch(/See 'kubectl ms2m (\w+ )?--help'/);
  });

  it("a flag without its value", async () => {
    const res = await bare("migrate", "pod", "--to");
    expect(res.code).toBe(2);
    expect(res.err).toMatch(/^error: Option '--to <value>' argument missing/);
  });

  it("the API's own rules: a Registry transfer needs a repository", async () => {
    const res = await run("migrate", "pod", "--transfer", "Registry");
    expect(res.code).toBe(2);
    expect(res.err).toMatch(/checkpointImageRepository/);
  });
});

describe("an error reaching the cluster is exit 1", () => {
  it("names the problem", async () => {
    const res = await run("status");
    expect(res.code).toBe(1);
    expect(res.err).toMatch(/^error: .*\/nonexistent\/kubeconfig/);
  });
});

describe("migrate --dry-run: the StatefulMigration, nothing created", () => {
  it("yaml by default, json with -o json", async () => {
    const yaml = await run("migrate", "consumer-1", "--to", "node-b", "--dry-run", "-n", "shop");
    expect(yaml.code).toBe(0);
    expect(yaml.out).toBe(
      [
        "apiVersion: migration.ms2m.io/v1alpha1",
        "kind: StatefulMigration",
        "metadata:",
        "  name: consumer-1-to-node-b",
        "spec:",
        "  sourcePod: consumer-1",
        "  targetNode: node-b",
        "  transferMode: Direct",
        "",
      ].join("\n"),
    );
    const json = await run(
      "migrate",
      "consumer-1",
      "--dry-run",
      "-o",
      "json",
      "--queue",
      "orders",
      "--exchange",
      "orders.fanout",
      "--broker-secret",
      "rabbit:amqp-url",
      "--strategy",
      "sequential",
      "--name",
      "move-it",
    );
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual({
      apiVersion: "migration.ms2m.io/v1alpha1",
      kind: "StatefulMigration",
      metadata: { name: "move-it" },
      spec: {
        sourcePod: "consumer-1",
        migrationStrategy: "Sequential",
        transferMode: "Direct",
        messageQueueConfig: {
          queueName: "orders",
          exchangeName: "orders.fanout",
          brokerSecretRef: { name: "rabbit", key: "amqp-url" },
        },
      },
    });
  });
});
