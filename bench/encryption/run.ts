// Encryption overhead of the Registry path: the same archive pushed and pulled plain and
// encrypted through the real registry, side by side, interleaved per repetition so drift hits
// both alike.
//
//   npm run bench:encryption -- [--sizes 30,300] [--reps 3] [--key ec|rsa]      (sizes in MB)
//
// Per size and repetition, on a fresh archive, `sync` before each timed path:
//   plain:     POST /v1/send (registry) on the source agent + POST /v1/pull on the target agent
//   encrypted: the same with `encryption.recipients` (the public key) on the send and
//              `decryption.privateKeys` on the pull (OCI layer encryption, AES-256-CTR +
//              HMAC-SHA256, the key wrapped in a JWE: src/checkpoint/encryption.ts)
// The order alternates (plain first on odd repetitions, encrypted first on even ones). Both
// are recorded sends, as the controller's: the archive's digest is known from checkpoint time
// (the plain push does not hash it again; the encrypted one must, see registry.ts). Pull
// includes the target's load into containers-storage (reported separately). The agents run in
// their own processes (bench/transfer/node.ts), as on two nodes.
// Then the crypto alone, in this process: CPU seconds to encrypt and to decrypt the same sizes
// (what the extra work costs a node, far less sensitive than wall time to other load).
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { createReadStream, createWriteStream, linkSync, rmSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { LayerEncryptor, openEncryptedLayer } from "../../src/checkpoint/encryption.ts";
import { writeFakeCheckpointArchive } from "../../src/checkpoint/fake-archive.ts";
import { runSkopeo, storageReference, type StorageConfig } from "../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../src/checkpoint/stream.ts";
import { AgentClient } from "../../src/transfer/client.ts";
import { TOKENS, makePki, startRegistry } from "../../tooling/agent-fixture.ts";
import { removeTempDir, tempDir } from "../../tooling/temp-dir.ts";

function flag(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1]! : def;
}
const sizes = flag("--sizes", "30,300").split(",").map(Number);
const reps = Number(flag("--reps", "3"));
const keyType = flag("--key", "ec");
if (sizes.some((s) => !(s > 0)) || !(reps >= 1) || !["ec", "rsa"].includes(keyType))
  throw new Error("usage: --sizes 30,300 --reps 3 --key ec|rsa");
const MB = 1024 * 1024;

class Node {
  private readonly proc: ChildProcess;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  constructor() {
    this.proc = fork(new URL("../transfer/node.ts", import.meta.url), [], { stdio: "inherit" });
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
}

const keys =
  keyType === "rsa"
    ? generateKeyPairSync("rsa", {
        modulusLength: 3072,
        publicKeyEncoding: { type: "spki", format: "pem" },
        privateKeyEncoding: { type: "pkcs8", format: "pem" },
      })
    : generateKeyPairSync("ec", {
        namedCurve: "prime256v1",
        publicKeyEncoding: { type: "spki", format: "pem" },
        privateKeyEncoding: { type: "pkcs8", format: "pem" },
      });

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
const work = tempDir("bench-encryption");

interface Run {
  push: number;
  pull: number;
  load: number;
  total: number;
}
const results = new Map<number, { plain: Run[]; encrypted: Run[] }>();
let seed = 0;

async function path(
  encrypted: boolean,
  archive: string,
  digest: string,
  size: number,
  tag: string,
): Promise<Run> {
  const n = ++seed;
  const migration = `bench-enc-${n}`;
  const container = encrypted ? "enc" : "plain";
  const name = `checkpoint-${migration}_default-${container}-2025-01-02T03:04:05Z.tar`;
  linkSync(archive, join(source.checkpointsDir, name));
  await srcNode.call({ cmd: "record", migration, pod: migration, container, archive: name, digest, size });
  const remote = `${registry.host}/ms2m/bench-${container}:${tag}`;
  // Encrypted images keep their registry name on the target (as the controller loads them).
  const image = encrypted ? remote : `localhost/bench/${container}:${tag}`;
  execFileSync("sync");
  const t0 = performance.now();
  const pushed = await client.send(source.url, {
    migration,
    namespace: "default",
    pod: migration,
    container,
    archive: name,
    destination: { type: "registry", image: remote },
    ...(encrypted ? { encryption: { recipients: [keys.publicKey] } } : {}),
  });
  const push = (performance.now() - t0) / 1000;
  const pulled = await client.pull(target.url, {
    migration,
    source: remote,
    image,
    expectedDigest: pushed.digest,
    ...(encrypted ? { decryption: { privateKeys: [keys.privateKey] } } : {}),
  });
  const total = (performance.now() - t0) / 1000;
  if (pulled.digest !== digest) throw new Error(`${container}: digest mismatch`);
  // not timed: nothing of this run stays for the next
  await runSkopeo(["delete", storageReference(target.store, image)]);
  await client.releaseCheckpoints(source.url, migration);
  return { push, pull: pulled.pullSeconds, load: pulled.loadSeconds, total };
}

for (const sizeMb of sizes) {
  const plain: Run[] = [];
  const encrypted: Run[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    const tag = `s${sizeMb}-r${rep}`;
    const archive = join(work, `archive-${tag}.tar`);
    await writeFakeCheckpointArchive(archive, { size: sizeMb * MB, seed: 1000 + seed });
    const { digest, size } = await digestFile(archive);
    for (const enc of rep % 2 ? [false, true] : [true, false]) {
      const r = await path(enc, archive, digest, size, tag);
      (enc ? encrypted : plain).push(r);
      console.error(
        `[bench] ${sizeMb} MB rep ${rep} ${enc ? "encrypted" : "plain    "}: total ${r.total.toFixed(2)} s ` +
          `(push ${r.push.toFixed(2)}, pull ${r.pull.toFixed(2)}, load ${r.load.toFixed(2)})`,
      );
    }
    rmSync(archive, { force: true });
  }
  results.set(sizeMb, { plain, encrypted });
}

// The crypto alone, in this process, on the same archives read from the page cache in 1 MiB
// chunks: CPU seconds (process.cpuUsage, user + system) of what an encrypted push adds (AES-CTR,
// HMAC-SHA256 and the ciphertext's sha256) and of what an encrypted pull adds (AES-CTR and
// HMAC-SHA256). CPU time is what the extra work costs a node; it moves far less than wall time
// when other processes compete for the CPUs.
const crypto = new Map<number, { enc: number[]; dec: number[] }>();
for (const sizeMb of sizes) {
  const enc: number[] = [];
  const dec: number[] = [];
  for (let rep = 1; rep <= reps; rep++) {
    const archive = join(work, `crypto-${sizeMb}-${rep}.tar`);
    await writeFakeCheckpointArchive(archive, { size: sizeMb * MB, seed: 5000 + rep });
    const { digest } = await digestFile(archive);
    const chunks = () => createReadStream(archive, { highWaterMark: MB }) as AsyncIterable<Buffer>;
    const cpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    };
    const ct = join(work, `crypto-${sizeMb}-${rep}.enc`);
    const out = createWriteStream(ct);
    let t = cpu();
    const encryptor = new LayerEncryptor([keys.publicKey]);
    for await (const c of chunks()) out.write(encryptor.update(c));
    const layer = encryptor.finish(digest);
    enc.push(cpu() - t);
    await new Promise((r) => out.end(r));
    t = cpu();
    const decryptor = openEncryptedLayer(layer.annotations, [keys.privateKey], "bench");
    for await (const c of createReadStream(ct, { highWaterMark: MB }) as AsyncIterable<Buffer>)
      decryptor.update(c);
    decryptor.finish();
    dec.push(cpu() - t);
    rmSync(archive, { force: true });
    rmSync(ct, { force: true });
  }
  crypto.set(sizeMb, { enc, dec });
}
const loadAfter = loadavg();

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const cell = (xs: number[]) => {
  const range = xs.length > 1 ? ` [${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}]` : "";
  return `${median(xs).toFixed(2)} s${range}`;
};
const header = [
  "archive",
  "path",
  "push",
  "pull (+ decrypt)",
  "target load",
  "push + pull + load",
  "overhead (s)",
  "overhead",
];
const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
for (const [sizeMb, { plain, encrypted }] of results) {
  const base = median(plain.map((r) => r.total));
  for (const [label, runs] of [
    ["plain", plain],
    ["encrypted", encrypted],
  ] as const) {
    const t = median(runs.map((r) => r.total));
    lines.push(
      `| ${sizeMb} MB | ${label} | ${cell(runs.map((r) => r.push))} | ${cell(runs.map((r) => r.pull))} | ` +
        `${cell(runs.map((r) => r.load))} | ${cell(runs.map((r) => r.total))} (${(sizeMb / t).toFixed(0)} MB/s) | ` +
        (label === "plain"
          ? "– | – |"
          : `**${(t - base).toFixed(2)}** | ${(((t - base) / base) * 100).toFixed(0)} % |`),
    );
  }
}
lines.push(
  "",
  "| archive | encrypt CPU (push side) | decrypt CPU (pull side) | together | per GB |",
  "|---|---|---|---|---|",
);
for (const [sizeMb, { enc, dec }] of crypto) {
  const both = median(enc) + median(dec);
  lines.push(
    `| ${sizeMb} MB | ${cell(enc)} | ${cell(dec)} | **${both.toFixed(2)} s** | ${((both / sizeMb) * 1024).toFixed(1)} s |`,
  );
}
lines.push(
  "",
  `${reps} repetitions per size, interleaved (order alternating); median [min–max]; overhead = ` +
    `median encrypted − median plain (push + pull + load). Key: ${keyType === "rsa" ? "RSA 3072" : "EC P-256"}. ` +
    `Load average (1/5/15 min) before ${loadBefore.map((x) => x.toFixed(2)).join("/")}, ` +
    `after ${loadAfter.map((x) => x.toFixed(2)).join("/")}; ${cpus().length} CPUs. Crypto CPU: ` +
    `in-process, the archive read from the page cache in 1 MiB chunks, reads included.`,
);
console.log(lines.join("\n"));

await client.close();
await Promise.all([srcNode.call({ cmd: "stop" }), dstNode.call({ cmd: "stop" })]);
srcNode.disconnect();
dstNode.disconnect();
await registry.stop();
await removeTempDir(work);
await removeTempDir(pki.dir);
