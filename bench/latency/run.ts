// Controller-added latency: N migrations (Deployment + ShadowPod + Direct, the reference consumer
// under a small producer) on a local cluster with simulated nodes and zero simulated latencies.
// Each migration is split two ways:
// - spans: the controller's own timeline (status.phaseTimings[].breakdown, src/controller/timeline):
//   external = its waits on agents, kubelets, the broker and watch events, the rest is its own;
// - outside view (the only one before timelines existed): external = the agents' checkpoint and
//   send seconds + the simulator's pod start latencies (zero here) + the whole Replaying phase.
// With --before REF the same run also drives migrations with the controller of another commit
// (a git worktree of REF; the cluster, nodes and workload are this checkout's), in alternating
// blocks, so both versions see the same machine; an older controller with timelines is compared
// by its spans too, and each version's Kubernetes API requests per migration (the breakdowns'
// apiCalls) are counted. Prints the tables and, last,
// `controller-added p50 <N> ms p95 <M> ms` (spans, this checkout). Writes results.json and
// summary.md to --out (default: a temp folder, removed at the end). Progress on stderr.
//
//   node bench/latency/run.ts [--n 20] [--rate 10] [--warmup-ms 500] [--before REF] [--block 5] [--out DIR]
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { startLocalCluster } from "../../tooling/cluster/local-cluster.ts";
import { sleep } from "../../tooling/exec.ts";
import { removeTempDir, tempDir } from "../../tooling/temp-dir.ts";
import { deleteBrokerObjects, runMatcher } from "../../tooling/broker/cleanup.ts";
import {
  agentSeconds,
  ControllerProcess,
  createDeployment,
  createMigration,
  createNamespace,
  deleteMigration,
  deployMs2m,
  finalAccounting,
  phaseMillis,
  stackEnv,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
  type ControllerTestEnv,
} from "../../tooling/stack/index.ts";
import {
  addedLine,
  breakdown,
  externalMs,
  percentiles,
  spanBreakdown,
  summarize,
  table,
  ZERO_LATENCIES,
  type Breakdown,
  type Summary,
} from "./breakdown.ts";
import { repoPath } from "../../tooling/stack/manifests.ts";
import type { PhaseTiming } from "../../src/api/v1alpha1/index.ts";

const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "20" },
    rate: { type: "string", default: "10" },
    "warmup-ms": { type: "string", default: "500" },
    before: { type: "string" },
    block: { type: "string", default: "5" },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    (await readFile(new URL(import.meta.url), "utf8"))
      .split("\n")
      .filter((l) => l.startsWith("//"))
      .join("\n"),
  );
  process.exit(0);
}
const n = Number(args.n);
const rate = Number(args.rate);
if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a positive integer (got ${args.n})`);
const out = args.out ? resolve(args.out) : tempDir("bench-latency");
mkdirSync(out, { recursive: true });
const say = (s: string) => process.stderr.write(`${s}\n`);

type Variant = "before" | "after";

interface Run {
  i: number;
  variant: Variant;
  outcome: string;
  phases: Record<string, number>;
  external: ReturnType<typeof externalMs>;
  /** Outside view. */
  breakdown: Breakdown;
  /** The controller's spans (absent for a controller without timelines). */
  spans: Breakdown | undefined;
  /** status.phaseTimings as the controller wrote them (with each phase's breakdown by kind). */
  timings: PhaseTiming[];
  lost: number;
  duplicated: number;
}

const stops: (() => Promise<void>)[] = [];
async function stopAll(): Promise<void> {
  for (const s of stops.splice(0).reverse()) await s().catch((e: unknown) => say(`cleanup: ${String(e)}`));
}
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say(`${sig}: cleaning up (again to exit at once)`);
    void stopAll().finally(() => process.exit(130));
  });

async function migrateOnce(
  env: ControllerTestEnv,
  ns: string,
  work: string,
  i: number,
  variant: Variant,
): Promise<Run> {
  const w = workloadNames(ns, `lat-${i}`, work);
  await createDeployment(env, ns, w, "node-a");
  try {
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    const pod = source?.metadata?.name ?? "";
    const producer = new TestProducer(env, w, rate);
    await producer.start();
    await sleep(Number(args["warmup-ms"]));
    const name = `m-lat-${i}`;
    await createMigration(env, ns, name, w, {
      sourcePod: pod,
      targetNode: "node-b",
      migrationStrategy: "ShadowPod",
      transferMode: "Direct",
    });
    const m = await waitForCompletion(env, ns, name, 120_000);
    const phases = phaseMillis(m);
    const external = externalMs(await agentSeconds(env, pod), ZERO_LATENCIES, phases);
    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
    await deleteMigration(env, ns, name).catch(() => undefined);
    return {
      i,
      variant,
      outcome: m.status?.phase ?? "?",
      phases,
      external,
      breakdown: breakdown(phases, external),
      spans: spanBreakdown(m.status?.phaseTimings ?? []),
      timings: m.status?.phaseTimings ?? [],
      lost: report.lost.length,
      duplicated: report.appliedTwice.length,
    };
  } finally {
    await env.apps.deleteNamespacedDeployment({ namespace: ns, name: w.name }).catch(() => undefined);
  }
}

const runs: Run[] = [];
const load = { before: loadavg(), after: [0, 0, 0] };
let ns = "";
let env: ControllerTestEnv | undefined;
try {
  const t0 = Date.now();
  say("starting the local control plane and two simulated nodes (zero latencies)…");
  const local = await startLocalCluster();
  stops.push(() => local.stop());
  env = stackEnv(local.cluster.info);
  for (const node of local.cluster.nodeNames()) await local.cluster.node(node).setLatencies(ZERO_LATENCIES);
  const work = join(out, "work");
  mkdirSync(work, { recursive: true });
  const { caFile } = await deployMs2m(env, work);
  const entries: Partial<Record<Variant, string>> = { after: repoPath("cmd/ms2m-controller/main.ts") };
  if (args.before) entries.before = checkoutOf(args.before, out);
  ns = await createNamespace(env, "lat");
  say(`cluster and ms2m ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const variants = Object.keys(entries).sort() as Variant[];
  const block = Math.max(1, Number(args.block));
  // Alternating blocks: a change of load hits both versions alike.
  for (let done = 0, i = 0; done < n && !interrupted; done += block) {
    for (const variant of variants) {
      const dir = join(work, variant);
      mkdirSync(dir, { recursive: true });
      const controller = new ControllerProcess(env, dir, caFile, {
        LOG_LEVEL: "info",
        ...(variant === "after"
          ? { OTEL_EXPORTER_OTLP_ENDPOINT: await traceSink(join(out, "traces.jsonl")) }
          : {}),
      });
      controller.entry = entries[variant]!;
      await controller.start();
      try {
        for (let k = 0; k < Math.min(block, n - done) && !interrupted; k++) {
          const r = await migrateOnce(env, ns, work, ++i, variant);
          runs.push(r);
          say(
            `#${i} ${variant} ${r.outcome}: total ${r.breakdown.total} ms, ` +
              `added ${r.spans ? `${r.spans.added} ms (spans), ` : ""}${r.breakdown.added} ms (outside view: ` +
              `checkpoint ${r.external.checkpoint}, transfer ${r.external.transfer}, replay ${r.external.replay}); ` +
              `lost ${r.lost}, twice ${r.duplicated}`,
          );
        }
      } finally {
        await controller.stop();
      }
    }
  }
} finally {
  if (ns && env) {
    await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
    const workloads = runs.map((r) => `lat-${r.i}`);
    await deleteBrokerObjects(runMatcher(ns, workloads, [])).catch(() => undefined);
  }
  await stopAll();
}
load.after = loadavg();

const of = (v: Variant) => runs.filter((r) => r.variant === v);
const after = of("after");
const spanRuns = after.flatMap((r) => (r.spans ? [r.spans] : []));
const spans = summarize(spanRuns);
// An older controller with timelines (status breakdowns) has spans too: compared as such.
const beforeSpanRuns = of("before").flatMap((r) => (r.spans ? [r.spans] : []));
const beforeSpans =
  beforeSpanRuns.length > 0 && beforeSpanRuns.length === of("before").length
    ? summarize(beforeSpanRuns)
    : undefined;
/** Kubernetes API requests per migration (the breakdowns' apiCalls), p50 and p95. */
const apiCalls = (v: Variant) => {
  const counts = of(v).flatMap((r) =>
    r.timings.every((t) => t.breakdown)
      ? [r.timings.reduce((a, t) => a + (t.breakdown?.apiCalls ?? 0), 0)]
      : [],
  );
  return counts.length === of(v).length && counts.length > 0 ? percentiles(counts) : undefined;
};
const outside: Partial<Record<Variant, Summary>> = { after: summarize(after.map((r) => r.breakdown)) };
if (args.before) outside.before = summarize(of("before").map((r) => r.breakdown));
const loadText = (l: number[]) => l.map((x) => x.toFixed(2)).join(", ");
const header =
  `${runs.length} migrations (Deployment + ShadowPod + Direct, ${rate} msg/s), simulated nodes with zero latencies; ` +
  `load average ${loadText(load.before)} before, ${loadText(load.after)} after. Milliseconds.`;
const lost = runs.reduce((a, r) => a + r.lost, 0);
const twice = runs.reduce((a, r) => a + r.duplicated, 0);
const failed = runs.filter((r) => r.outcome !== "Completed").length;
const outcome = `${runs.length - failed}/${runs.length} Completed, ${lost} lost, ${twice} applied twice`;
const ms = (x: number) => String(Math.round(x));
const sideBySide = [
  "| controller | migrations | duration p50 | p95 | added, outside view p50 | p95 | added, spans p50 | p95 | API requests p50 | p95 |",
  "|---|---|---|---|---|---|---|---|---|---|",
  ...(Object.entries(outside) as [Variant, Summary][]).map(([v, o]) => {
    const total = o.rows.find((r) => r.phase === "migration")!.total;
    const sp = v === "after" ? (spanRuns.length > 0 ? spans.added : undefined) : beforeSpans?.added;
    const api = apiCalls(v);
    return (
      `| ${v === "after" ? "this checkout" : `before (${args.before})`} | ${of(v).length} | ${ms(total.p50)} | ` +
      `${ms(total.p95)} | ${ms(o.added.p50)} | ${ms(o.added.p95)} | ${sp ? ms(sp.p50) : "–"} | ${sp ? ms(sp.p95) : "–"} | ` +
      `${api ? ms(api.p50) : "–"} | ${api ? ms(api.p95) : "–"} |`
    );
  }),
].join("\n");
const sections = [
  `${header}\n\n${outcome}`,
  `Side by side (outside view: external = agent checkpoint + agent send + simulated pod start + the whole ` +
    `Replaying phase; spans: external = the controller's waits on agents, kubelets, the broker and watch events):\n\n${sideBySide}`,
  `This checkout, per phase, from the controller's spans:\n\n${table(spans)}`,
  ...(beforeSpans ? [`Before (${args.before}), per phase, from its spans:\n\n${table(beforeSpans)}`] : []),
  ...(outside.before
    ? [`Before (${args.before}), per phase, outside view:\n\n${table(outside.before)}`]
    : []),
  `This checkout, per phase, outside view:\n\n${table(outside.after!)}`,
];
writeFileSync(
  join(out, "results.json"),
  `${JSON.stringify({ load, rate, before: args.before, runs, spans, beforeSpans, outside }, null, 2)}\n`,
);
writeFileSync(
  join(out, "summary.md"),
  `# Controller-added latency\n\n${sections.join("\n\n")}\n\n${addedLine(spans)}\n`,
);
console.log(sections.join("\n\n"));
console.log();
if (args.out) say(`results in ${out}`);
else await removeTempDir(out);
console.log(addedLine(spans));
if (failed > 0 || lost > 0 || twice > 0 || spanRuns.length < after.length) process.exitCode = 1;

/**
 * A local OTLP/HTTP receiver that appends each request body to `file` (one JSON line per
 * migration: every span of its timeline, for a closer look than the per-phase table).
 */
async function traceSink(file: string): Promise<string> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      appendFileSync(file, `${body}\n`);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  stops.push(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A worktree of `ref` (this checkout's node_modules), removed at the end. Returns its controller entry. */
function checkoutOf(ref: string, under: string): string {
  const dir = join(under, "before");
  const git = (...a: string[]) =>
    execFileSync("git", a, { cwd: repoPath("."), stdio: ["ignore", "pipe", "pipe"] });
  git("worktree", "add", "--detach", dir, ref);
  stops.unshift(async () => {
    git("worktree", "remove", "--force", dir);
  });
  symlinkSync(repoPath("node_modules"), join(dir, "node_modules"));
  say(`controller of ${ref} from ${dir}`);
  return join(dir, "cmd/ms2m-controller/main.ts");
}
