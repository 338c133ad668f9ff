// Transfer benchmark: the direct (agent → agent) and registry paths against raw baselines
// measured in the same run, interleaved per repetition so drift (page cache, writeback, other
// load) hits all of them alike.
//
//   node bench/transfer/run.ts [--sizes 30,300,1024] [--reps 3]      (sizes in MB)
//
// Per size and repetition, in this order, each on a fresh archive (new content: no layer or
// blob is ever "already there"), `sync` before every timed step (none inside a step), not timed:
//   1. raw HTTPS copy: source process → target process, the body written to a file there;
//   2. at once (no sync in between: the copy's writeback is paid as the agent pays its own)
//      skopeo load of that copy: `skopeo copy oci:<layout> containers-storage:`, the copy
//      hard-linked as the layout's layer blob
//   3. skopeo push + pull through the registry (oci → docker://, docker:// → containers-storage),
//      back to back
//   4. ms2m direct: POST /v1/send (agent) until the target answered "image loaded and verified"
//   5. ms2m registry: POST /v1/send (registry) + POST /v1/pull until the image is loaded
// Page caches are not dropped (that needs root and disturbs other work on the machine): the
// archive is in the page cache for every path alike, as it is right after the kubelet wrote it.
// The ms2m sends are recorded checkpoints (what the controller uses: POST /v1/checkpoint with a
// migration key): the archive's sha256 was taken at checkpoint time, so the source does not
// hash it again; the target (direct) or the registry (push) verifies it.
// The two agents run in their own processes (127.0.0.1 and 127.0.0.2), as on two nodes; the
// raw client and sink run in those same processes.
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { linkSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { writeFakeCheckpointArchive } from "../../src/checkpoint/fake-archive.ts";
import { blobPath, describeCheckpointImage, initLayout, writeLayout } from "../../src/checkpoint/image.ts";
import { runSkopeo, storageReference, type StorageConfig } from "../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../src/checkpoint/stream.ts";
import { AgentClient } from "../../src/transfer/client.ts";
import { TOKENS, makePki, startRegistry } from "../../tooling/agent-fixture.ts";

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : def;
}
const sizes = flag("--sizes", "30,300,1024").split(",").map(Number);
const reps = Number(flag("--reps", "3"));
if (sizes.some((s) => !(s > 0)) || !(reps >= 1)) throw new Error("usage: --sizes 30,300 --reps 3");
const MB = 1024 * 1024;

// ---- the two node processes ----
class Node {
  private readonly proc: ChildProcess;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  constructor() {
    this.proc = fork(new URL("./node.ts", import.meta.url), [], { stdio: "inherit" });
    this.proc.on("message", (m: { id: number; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(m.error));
      else w?.resolve(m.result);
    });
  }
  call<T>(msg: Record<string, unknown>): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, msg });
    });
  }
  disconnect() {
    this.proc.disconnect();
  }
}
interface Started {
  url: string;
  checkpointsDir: string;
  store: StorageConfig;
  sinkUrl: string;
  sinkDir: string;
}

const loadBefore = loadavg();
const pki = makePki();
const registry = await startRegistry();
const env = { AGENT_INSECURE_REGISTRIES: registry.host };
const [srcNode, dstNode] = [new Node(), new Node()];
const [source, target] = await Promise.all([
  srcNode.call<Started>({ cmd: "start", host: "127.0.0.1", pkiDir: pki.dir, env }),
  dstNode.call<Started>({ cmd: "start", host: "127.0.0.2", pkiDir: pki.dir, env }),
]);
const client = new AgentClient({ ca: pki.ca, token: () => TOKENS.controller });
const work = mkdtempSync(join(tmpdir(), "ms2m-bench-"));

const sync = () => execFileSync("sync");
async function timed(fn: () => unknown): Promise<number> {
  sync();
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}
function skopeo(...args: string[]) {
  execFileSync("skopeo", ["--insecure-policy", ...args], { stdio: ["ignore", "ignore", "inherit"] });
}
function removeStore(store: StorageConfig) {
  try {
    execFileSync("umount", [join(store.graphRoot, "overlay")], { stdio: "ignore" });
  } catch {
    // not mounted
  }
  rmSync(join(store.graphRoot, ".."), { recursive: true, force: true });
}

interface Rep {
  raw: number;
  load: number;
  push: number;
  pull: number;
  direct: number;
  directLoad: number;
  registry: number;
  regPush: number;
  regPull: number;
  regLoad: number;
}
const results = new Map<number, Rep[]>();
const rss = new Map<number, { source: number; target: number }>();
let seed = 0;

for (const sizeMb of sizes) {
  const runs: Rep[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    const n = ++seed;
    const tag = `s${sizeMb}-r${rep}`;
    const archive = join(work, `archive-${tag}.tar`);
    await writeFakeCheckpointArchive(archive, { size: sizeMb * MB, seed: n });
    const { digest, size } = await digestFile(archive);

    // 1. raw HTTPS copy between the node processes, into a file on the target's side
    const layout = join(work, `layout-${tag}`);
    await initLayout(layout);
    await writeLayout(layout, describeCheckpointImage({ digest, size }, "app"), "t", "app");
    const store = (k: string): StorageConfig => ({
      driver: "overlay",
      graphRoot: join(work, `bs-${tag}-${k}/g`),
      runRoot: join(work, `bs-${tag}-${k}/r`),
    });
    sync();
    const raw = await srcNode.call<number>({
      cmd: "raw",
      path: archive,
      url: target.sinkUrl,
      size,
      name: tag,
    });
    // 2. at once (its writeback still running, as the agent's is): skopeo load of that copy
    linkSync(join(target.sinkDir, tag), blobPath(layout, digest));
    const loadStore = store("load");
    let t0 = performance.now();
    skopeo("copy", "--quiet", `oci:${layout}:t`, storageReference(loadStore, "localhost/base/load:t"));
    const load = (performance.now() - t0) / 1000;
    removeStore(loadStore);

    // 3. skopeo push + pull through the same registry, back to back
    const remoteBase = `${registry.host}/base/ckpt-${tag}:t`;
    const pullStore = store("pull");
    sync();
    t0 = performance.now();
    skopeo("copy", "--quiet", "--dest-tls-verify=false", `oci:${layout}:t`, `docker://${remoteBase}`);
    const push = (performance.now() - t0) / 1000;
    t0 = performance.now();
    skopeo(
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      `docker://${remoteBase}`,
      storageReference(pullStore, "localhost/base/pull:t"),
    );
    const pull = (performance.now() - t0) / 1000;
    removeStore(pullStore);
    rmSync(layout, { recursive: true, force: true });
    await dstNode.call({ cmd: "sinkClean" });

    // 4. ms2m direct (a recorded checkpoint, as the controller's migrations are)
    const name = (c: string) => `checkpoint-bench-${n}_default-${c}-2025-01-02T03:04:05Z.tar`;
    const migration = `bench-${n}`;
    for (const c of ["direct", "reg"]) {
      linkSync(archive, join(source.checkpointsDir, name(c)));
      await srcNode.call({
        cmd: "record",
        migration,
        pod: migration,
        container: c,
        archive: name(c),
        digest,
        size,
      });
    }
    const directImage = `localhost/bench/direct:${tag}`;
    let directLoad = 0;
    const direct = await timed(async () => {
      const d = await client.send(source.url, {
        migration,
        namespace: "default",
        pod: migration,
        container: "direct",
        archive: name("direct"),
        destination: { type: "agent", url: target.url, image: directImage },
      });
      if (d.digest !== digest) throw new Error("direct digest mismatch");
      directLoad = d.targetLoadSeconds ?? 0;
    });
    // not timed: the next path must not find the layer already in the target's store
    await runSkopeo(["delete", storageReference(target.store, directImage)]);

    // 5. ms2m registry
    const remote = `${registry.host}/ms2m/ckpt-${tag}:t`;
    const regImage = `localhost/bench/reg:${tag}`;
    let regPush = 0;
    let regPull = 0;
    let regLoad = 0;
    const registryTotal = await timed(async () => {
      const t = performance.now();
      const pushed = await client.send(source.url, {
        migration,
        namespace: "default",
        pod: migration,
        container: "reg",
        archive: name("reg"),
        destination: { type: "registry", image: remote },
      });
      regPush = (performance.now() - t) / 1000;
      const pulled = await client.pull(target.url, {
        migration,
        source: remote,
        image: regImage,
        expectedDigest: pushed.digest,
      });
      regPull = pulled.pullSeconds;
      regLoad = pulled.loadSeconds;
    });
    await runSkopeo(["delete", storageReference(target.store, regImage)]);
    await client.releaseCheckpoints(source.url, migration); // archives, records, registry image
    rmSync(archive, { force: true });

    runs.push({
      raw,
      load,
      push,
      pull,
      direct,
      directLoad,
      registry: registryTotal,
      regPush,
      regPull,
      regLoad,
    });
    console.error(
      `[bench] ${sizeMb} MB rep ${rep}: raw ${raw.toFixed(2)} load ${load.toFixed(2)} push+pull ${(push + pull).toFixed(2)}` +
        ` direct ${direct.toFixed(2)} (load ${directLoad.toFixed(2)}) registry ${registryTotal.toFixed(2)}` +
        ` (push ${regPush.toFixed(2)} pull ${regPull.toFixed(2)} load ${regLoad.toFixed(2)})`,
    );
  }
  results.set(sizeMb, runs);
  const [s, t] = await Promise.all([
    srcNode.call<{ maxRssMb: number }>({ cmd: "rss" }),
    dstNode.call<{ maxRssMb: number }>({ cmd: "rss" }),
  ]);
  rss.set(sizeMb, { source: s.maxRssMb, target: t.maxRssMb });
}
const loadAfter = loadavg();

// ---- report ----
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pick = (runs: Rep[], f: (r: Rep) => number) => runs.map(f);
const cell = (xs: number[], mb?: number) => {
  const m = median(xs);
  const range = xs.length > 1 ? ` [${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}]` : "";
  return `${m.toFixed(2)} s${range}${mb ? `, ${(mb / m).toFixed(0)} MB/s` : ""}`;
};
const header = [
  "archive",
  "raw HTTPS copy",
  "skopeo load",
  "baseline (copy + load)",
  "ms2m direct",
  "direct / baseline",
  "skopeo push + pull",
  "ms2m registry",
  "registry / baseline",
];
const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
for (const [sizeMb, runs] of results) {
  const base = runs.map((r) => r.raw + r.load);
  const regBase = runs.map((r) => r.push + r.pull);
  lines.push(
    `| ${sizeMb} MB | ${cell(
      pick(runs, (r) => r.raw),
      sizeMb,
    )} | ${cell(pick(runs, (r) => r.load))} | ${cell(base)} | ` +
      `${cell(
        pick(runs, (r) => r.direct),
        sizeMb,
      )} | **${(median(pick(runs, (r) => r.direct)) / median(base)).toFixed(2)}x** | ` +
      `${cell(regBase)} | ${cell(
        pick(runs, (r) => r.registry),
        sizeMb,
      )} | **${(median(pick(runs, (r) => r.registry)) / median(regBase)).toFixed(2)}x** |`,
  );
}
lines.push(
  "",
  "| archive | direct: transfer / target load | registry: push / pull / target load | peak RSS source / target agent process |",
  "|---|---|---|---|",
);
for (const [sizeMb, runs] of results) {
  const m = (f: (r: Rep) => number) => median(pick(runs, f)).toFixed(2);
  const r = rss.get(sizeMb)!;
  lines.push(
    `| ${sizeMb} MB | ${m((x) => x.direct - x.directLoad)} s / ${m((x) => x.directLoad)} s | ` +
      `${m((x) => x.regPush)} s / ${m((x) => x.regPull)} s / ${m((x) => x.regLoad)} s | ${r.source.toFixed(0)} MB / ${r.target.toFixed(0)} MB |`,
  );
}
lines.push(
  "",
  `${reps} repetitions per size, interleaved; median [min–max]; ratios are ratios of medians. ` +
    `Peak RSS is each agent process's lifetime peak after that size. ` +
    `Load average (1/5/15 min) before ${loadBefore.map((x) => x.toFixed(2)).join("/")}, ` +
    `after ${loadAfter.map((x) => x.toFixed(2)).join("/")}; ${(await import("node:os")).cpus().length} CPUs.`,
);
console.log(lines.join("\n"));

await client.close();
await Promise.all([srcNode.call({ cmd: "stop" }), dstNode.call({ cmd: "stop" })]);
srcNode.disconnect();
dstNode.disconnect();
await registry.stop();
rmSync(work, { recursive: true, force: true });
rmSync(pki.dir, { recursive: true, force: true });
