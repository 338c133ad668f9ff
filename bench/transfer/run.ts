// Transfer benchmark: direct (agent → agent) and registry paths against raw baselines measured
// in the same run. Usage: node bench/transfer/run.ts [--sizes 30,300,1024]  (MB)
import { execFileSync } from "node:child_process";
import { createReadStream, createWriteStream, linkSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { request as httpsRequest } from "node:https";
import { writeFakeCheckpointArchive } from "../../src/checkpoint/fake-archive.ts";
import { blobPath, describeCheckpointImage, initLayout, writeLayout } from "../../src/checkpoint/image.ts";
import { storageReference } from "../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../src/checkpoint/stream.ts";
import { AgentClient } from "../../src/transfer/client.ts";
import { TOKENS, makePki, startAgent, startRegistry } from "../../test/component/agent/helpers.ts";

const arg = process.argv.indexOf("--sizes");
const sizes = (arg > 0 ? process.argv[arg + 1]! : "30,300,1024").split(",").map(Number);
const MB = 1024 * 1024;

const pki = makePki();
const [source, target, registry] = await Promise.all([
  startAgent(pki, { host: "127.0.0.1" }),
  startAgent(pki, { host: "127.0.0.2" }),
  startRegistry(),
]);
for (const a of [source, target]) (a.agent.config.AGENT_INSECURE_REGISTRIES as string[]).push(registry.host);
const client = new AgentClient({ ca: pki.ca, token: () => TOKENS.controller });
const work = mkdtempSync(join(tmpdir(), "ms2m-bench-"));

// raw baseline server: HTTPS, writes the body to a file, nothing else
const sink = createServer({ cert: pki.cert, key: pki.key }, (req, res) => {
  const out = createWriteStream(join(work, `sink-${Math.random()}`));
  pipeline(req, out).then(
    () => res.end("ok"),
    () => res.end("err"),
  );
});
await new Promise<void>((r) => sink.listen(0, "127.0.0.2", r));
const sinkPort = (sink.address() as AddressInfo).port;

async function rawHttps(path: string, size: number): Promise<number> {
  const t = performance.now();
  await new Promise<void>((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "127.0.0.2",
        port: sinkPort,
        method: "POST",
        path: "/",
        ca: pki.ca,
        headers: { "content-length": size },
      },
      (res) => res.resume().on("end", resolve),
    );
    req.on("error", reject);
    createReadStream(path, { highWaterMark: MB }).pipe(req);
  });
  return (performance.now() - t) / 1000;
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}

const rows: string[][] = [];
let n = 0;
for (const sizeMb of sizes) {
  n++;
  const archive = join(work, `archive-${sizeMb}.tar`);
  await writeFakeCheckpointArchive(archive, { size: sizeMb * MB, seed: n });
  const { digest, size } = await digestFile(archive);
  const mb = size / MB;

  // baselines
  const raw = await rawHttps(archive, size);
  const layout = join(work, `layout-${sizeMb}`);
  await initLayout(layout);
  linkSync(archive, blobPath(layout, digest));
  await writeLayout(layout, describeCheckpointImage({ digest, size }, "app"), "t", "app");
  const store = {
    driver: "overlay" as const,
    graphRoot: join(work, `bs-${n}/g`),
    runRoot: join(work, `bs-${n}/r`),
  };
  const skopeoLoad = timed(() =>
    execFileSync("skopeo", [
      "--insecure-policy",
      "copy",
      "--quiet",
      `oci:${layout}:t`,
      storageReference(store, `localhost/base/${n}:t`),
    ]),
  );
  const remoteBase = `${registry.host}/base/ckpt:${n}`;
  const skopeoPush = timed(() =>
    execFileSync("skopeo", [
      "--insecure-policy",
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      `oci:${layout}:t`,
      `docker://${remoteBase}`,
    ]),
  );
  const skopeoPull = timed(() =>
    execFileSync("skopeo", [
      "--insecure-policy",
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      `docker://${remoteBase}`,
      storageReference(store, `localhost/base/${n}:pulled`),
    ]),
  );

  // ms2m direct
  const name = (c: string) => `checkpoint-bench-${n}_default-${c}-2025-01-02T03:04:05Z.tar`;
  linkSync(archive, join(source.checkpointsDir, name("direct")));
  let t = performance.now();
  const d = await client.send(source.url, {
    migration: `bench-${n}`,
    namespace: "default",
    pod: `bench-${n}`,
    container: "direct",
    archive: name("direct"),
    destination: { type: "agent", url: target.url, image: `localhost/bench/direct-${n}:t` },
  });
  const direct = (performance.now() - t) / 1000;
  if (d.digest !== digest) throw new Error("direct digest mismatch");

  // ms2m registry
  linkSync(archive, join(source.checkpointsDir, name("reg")));
  t = performance.now();
  const remote = `${registry.host}/ms2m/ckpt:bench-${n}`;
  const pushed = await client.send(source.url, {
    migration: `bench-${n}`,
    namespace: "default",
    pod: `bench-${n}`,
    container: "reg",
    archive: name("reg"),
    destination: { type: "registry", image: remote },
  });
  const push = (performance.now() - t) / 1000;
  await client.pull(target.url, {
    migration: `bench-${n}`,
    source: remote,
    image: `localhost/bench/reg-${n}:t`,
    expectedDigest: pushed.digest,
  });
  const registryTotal = (performance.now() - t) / 1000;

  const f = (s: number) => `${s.toFixed(2)} s`;
  const rate = (s: number) => `${(mb / s).toFixed(0)} MB/s`;
  rows.push([
    `${sizeMb} MB`,
    `${f(raw)} (${rate(raw)})`,
    f(skopeoLoad),
    f(raw + skopeoLoad),
    `${f(direct)} (${rate(direct)})`,
    `${(direct / (raw + skopeoLoad)).toFixed(2)}x`,
    f(skopeoPush + skopeoPull),
    `${f(registryTotal)} (push ${f(push)})`,
    `${(registryTotal / (skopeoPush + skopeoPull)).toFixed(2)}x`,
  ]);
  rmSync(layout, { recursive: true, force: true });
  rmSync(archive, { force: true });
  try {
    execFileSync("umount", [join(store.graphRoot, "overlay")], { stdio: "ignore" });
  } catch {
    // not mounted
  }
  rmSync(join(work, `bs-${n}`), { recursive: true, force: true });
  execFileSync("sh", ["-c", `rm -f ${work}/sink-*`]);
}

const header = [
  "archive",
  "raw HTTPS copy",
  "skopeo load (oci→c/s)",
  "baseline sum",
  "ms2m direct: send→image usable",
  "direct / baseline",
  "skopeo push+pull (baseline)",
  "ms2m registry: send→image usable",
  "registry / baseline",
];
console.log(`| ${header.join(" | ")} |`);
console.log(`|${header.map(() => "---").join("|")}|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
console.log(
  `\nmax RSS of the process running bench + both agents: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
);

await client.close();
sink.close();
await Promise.all([source.stop(), target.stop(), registry.stop()]);
rmSync(work, { recursive: true, force: true });
rmSync(pki.dir, { recursive: true, force: true });
