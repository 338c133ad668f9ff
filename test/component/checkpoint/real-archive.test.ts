// A checkpoint archive made on a real node (make cluster-up RUNTIME=real: kubelet v1.36.3,
// CRI-O v1.36.1, runc, CRIU 4.2.1; `sleep` in the workload image, run as root, after writing a
// file, a symlink and deleting one, so rootfs-diff.tar and deleted.files are not empty), kept as
// a fixture: the layout check accepts it as the kubelet wrote it, and an agent loads it.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StreamMeter } from "../../../src/checkpoint/stream.ts";
import { storedManifest } from "../../../src/checkpoint/skopeo.ts";
import { TOKENS, makePki, startAgent, type Pki, type TestAgent } from "../../../tooling/agent-fixture.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";

const archive = gunzipSync(
  readFileSync(new URL("./fixtures/crio-1.36.1-criu-4.2.1-sleep.tar.gz", import.meta.url)),
);
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("a real CRI-O/CRIU checkpoint archive", () => {
  it("passes the tar and layout checks, whatever the chunking", () => {
    for (const chunk of [1, 511, 16 * 1024, archive.length]) {
      const meter = new StreamMeter({ maxBytes: 1 << 30 });
      for (let i = 0; i < archive.length; i += chunk) meter.update(archive.subarray(i, i + chunk));
      expect(meter.finish().entries).toBe(31);
      expect(meter.verifyLayout()).toMatchObject({ criuImages: 3, rootfsDiffEntries: 6 });
    }
  });

  let pki: Pki;
  let agent: TestAgent;
  beforeAll(async () => {
    pki = makePki();
    agent = await startAgent(pki, { host: "127.0.0.2" });
  });
  afterAll(async () => {
    await agent?.stop();
    await removeTempDir(pki?.dir);
  });

  it("is received and loaded by an agent", async () => {
    const dispatcher = new Agent({ connect: { ca: pki.ca, servername: "ms2m-agent" } });
    const image = "localhost/real/sleeper:t";
    const res = await request(new URL(`/v1/archives?container=app&image=${image}`, agent.url), {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKENS.agent}`,
        "content-type": "application/x-tar",
        "ms2m-archive-digest": sha(archive),
      },
      body: archive,
      dispatcher,
    });
    expect(res.statusCode, await res.body.text()).toBe(201);
    const manifest = (await storedManifest(agent.store, image)) as { layers: { digest: string }[] };
    expect(manifest.layers[0]?.digest).toBe(sha(archive));
    await dispatcher.close();
  });
});
