// A sender that knows the archive's digest beforehand (recorded at checkpoint time) does not
// hash it again: the receiver must still refuse bytes that do not match it — the target agent
// (direct) and the registry at upload commit (registry).
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendArchive } from "../../../src/checkpoint/direct.ts";
import { writeFakeCheckpointArchive } from "../../../src/checkpoint/fake-archive.ts";
import { deleteCheckpointImage, pushCheckpointImage } from "../../../src/checkpoint/registry.ts";
import { listStoredImages } from "../../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../../src/checkpoint/stream.ts";
import {
  TOKENS,
  makePki,
  residue,
  startAgent,
  startRegistry,
  type Pki,
  type TestAgent,
  type TestRegistry,
} from "../../../tooling/agent-fixture.ts";

const MAX = 1024 ** 3;
let pki: Pki;
let target: TestAgent;
let registry: TestRegistry;
let work: string;
let archive: { path: string; digest: string; size: number };
const other = `sha256:${createHash("sha256").update("something else").digest("hex")}`;

beforeAll(async () => {
  pki = makePki();
  work = mkdtempSync(join(tmpdir(), "ms2m-known-digest-"));
  [target, registry] = await Promise.all([startAgent(pki, { host: "127.0.0.2" }), startRegistry()]);
  const path = join(work, "a.tar");
  await writeFakeCheckpointArchive(path, { size: 1024 * 1024, containerName: "app" });
  archive = { path, ...(await digestFile(path)) };
});

afterAll(async () => {
  await Promise.all([target?.stop(), registry?.stop()]);
  await rm(work, { recursive: true, force: true });
  await rm(pki.dir, { recursive: true, force: true });
});

const send = (digest: string, image: string) =>
  sendArchive(
    createReadStream(archive.path),
    { container: "app", image },
    {
      url: target.url,
      token: TOKENS.agent,
      ca: pki.ca,
      servername: "ms2m-agent",
      size: archive.size,
      maxBytes: MAX,
      digest,
    },
  );

describe("known digest: the sender does not hash, the receiver verifies", () => {
  it("direct: a digest that does not match the bytes is refused by the target; nothing loaded", async () => {
    await expect(send(other, "localhost/known/bad:t")).rejects.toMatchObject({
      reason: "BadRequest",
      message: expect.stringMatching(/digest mismatch/),
    });
    expect(residue(target)).toEqual([]);
    expect(await listStoredImages(target.store)).toEqual([]);
    const ok = await send(archive.digest, "localhost/known/good:t");
    expect(ok.digest).toBe(archive.digest);
    expect(await listStoredImages(target.store)).toEqual(["localhost/known/good:t"]);
  });

  it("registry: the registry refuses the upload commit; no manifest is written", async () => {
    const remote = `${registry.host}/known/digest:bad`;
    const opts = { insecureHosts: [registry.host], maxBytes: MAX, expectedSize: archive.size };
    await expect(
      pushCheckpointImage(createReadStream(archive.path), remote, "app", { ...opts, expectedDigest: other }),
    ).rejects.toMatchObject({
      reason: "BadRequest",
      message: expect.stringMatching(/commit upload: HTTP 400/),
    });
    expect(await deleteCheckpointImage(remote, { insecureHosts: [registry.host] })).toBe("absent");
    const good = await pushCheckpointImage(
      createReadStream(archive.path),
      `${registry.host}/known/digest:good`,
      "app",
      {
        ...opts,
        expectedDigest: archive.digest,
      },
    );
    expect(good.layerDigest).toBe(archive.digest);
  });
});
