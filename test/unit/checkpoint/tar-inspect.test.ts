import fc from "fast-check";
import tarStream from "tar-stream";
import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { TarInspector, normalizeEntryPath } from "../../../src/checkpoint/tar-inspect.ts";
import { tarOf } from "../../../tooling/agent-fixture.ts";

async function packOf(files: { name: string; data: string }[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c: unknown) => void chunks.push(c as Buffer));
  for (const f of files) pack.entry({ name: f.name }, f.data);
  pack.finalize();
  await new Promise<void>((r) => pack.on("end", () => r()));
  return Buffer.concat(chunks);
}

function inspect(buf: Buffer, chunk = 97): TarInspector {
  const t = new TarInspector();
  for (let i = 0; i < buf.length; i += chunk) t.write(buf.subarray(i, i + chunk));
  t.end();
  return t;
}

describe("TarInspector", () => {
  it("accepts archives written by tar-stream, whatever the chunking", async () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9_]{0,20}$/);
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.record({ name, data: fc.string({ maxLength: 2000 }) }), {
          selector: (f) => f.name,
          minLength: 1,
          maxLength: 8,
        }),
        fc.integer({ min: 1, max: 3000 }),
        async (files, chunk) => {
          const t = inspect(await packOf(files), chunk);
          expect(t.entries).toBe(files.length);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("long names via PAX (tar-stream) are accepted", async () => {
    const long = `checkpoint/${"d".repeat(150)}/pages.img`;
    expect(inspect(await packOf([{ name: long, data: "x" }])).entries).toBe(1);
  });

  it("never throws anything but an Ms2mError on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
        try {
          inspect(Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(Ms2mError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("rejects every prefix of a valid archive (truncation)", async () => {
    const buf = await packOf([{ name: "a", data: "x".repeat(700) }]);
    for (let n = 0; n < buf.length; n += 256) expect(() => inspect(buf.subarray(0, n))).toThrow(Ms2mError);
  });

  it("rejects an archive with only end markers", () => {
    expect(() => inspect(Buffer.alloc(1024))).toThrow(/no entries/);
  });

  it("limits entries", () => {
    const t = new TarInspector({ maxEntries: 2 });
    const buf = tarOf([1, 2, 3].map((i) => ({ name: `f${i}`, data: Buffer.from("x") })));
    expect(() => t.write(buf)).toThrow(/more than 2 entries/);
  });

  it("keeps failing after the first error", () => {
    const t = new TarInspector();
    expect(() => t.write(tarOf([{ name: "/abs", data: Buffer.from("x") }]))).toThrow(Ms2mError);
    expect(() => t.end()).toThrow(Ms2mError);
  });
});

describe("normalizeEntryPath", () => {
  it.each([
    ["./checkpoint/pages.img", "checkpoint/pages.img"],
    ["checkpoint//x/", "checkpoint/x"],
    ["./", null],
  ])("%s → %s", (raw, out) => expect(normalizeEntryPath(raw, 4096)).toBe(out));
  it.each(["/etc", "a/../b", "..", "", "a\0b"])("rejects %j", (raw) => {
    expect(() => normalizeEntryPath(raw, 4096)).toThrow(Ms2mError);
  });
});
