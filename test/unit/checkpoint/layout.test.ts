import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { checkpointArchiveFiles, criuImage } from "../../../src/checkpoint/fake-archive.ts";
import { CRIO_ANNOTATIONS, CRIU_MAGIC } from "../../../src/checkpoint/layout.ts";
import { StreamMeter } from "../../../src/checkpoint/stream.ts";
import { tarOf, type RawEntry } from "../../../tooling/agent-fixture.ts";

/** Runs the archive through the meter as a receive does; returns the error message or "ok". */
function check(buf: Buffer, chunk = 313): string {
  const meter = new StreamMeter({ maxBytes: 1 << 30 });
  try {
    for (let i = 0; i < buf.length; i += chunk) meter.update(buf.subarray(i, i + chunk));
    meter.finish();
    meter.verifyLayout();
    return "ok";
  } catch (err) {
    expect(err).toBeInstanceOf(Ms2mError);
    return (err as Error).message;
  }
}

const entries = (files = checkpointArchiveFiles()): RawEntry[] => [
  { name: "checkpoint/", type: "5", mode: 0o700 },
  ...files.map(([name, data]) => ({ name, data })),
];
const without = (name: string) => entries(checkpointArchiveFiles().filter(([n]) => n !== name));
const replacing = (name: string, data: Buffer | string) =>
  entries(checkpointArchiveFiles().map(([n, d]) => [n, n === name ? Buffer.from(data) : d]));
const json = (v: unknown) => JSON.stringify(v);
const spec = (extra: object) => json({ annotations: { [CRIO_ANNOTATIONS]: "{}" }, ...extra });

describe("checkpoint layout", () => {
  it("accepts the fake archive's layout, with and without a rootfs diff", () => {
    expect(check(tarOf(entries()))).toBe("ok");
    const inner = tarOf([
      { name: "etc/", type: "5" },
      { name: "etc/motd", data: Buffer.from("hi") },
    ]);
    expect(check(tarOf([...entries(), { name: "rootfs-diff.tar", data: inner }]))).toBe("ok");
    expect(check(tarOf([...entries(), { name: "rootfs-diff.tar", data: Buffer.alloc(1024) }]))).toBe("ok");
  });

  it.each([
    ["config.dump", /config.dump missing/],
    ["spec.dump", /spec.dump missing/],
    ["checkpoint/inventory.img", /inventory.img missing/],
    ["checkpoint/pstree.img", /pstree.img missing/],
    ["checkpoint/core-1.img", /no core-<pid>.img/],
  ])("refuses an archive without %s", (name, message) => {
    expect(check(tarOf(without(name)))).toMatch(message);
  });

  it.each([
    ["config.dump", "{", /config.dump is not JSON/],
    ["config.dump", "[]", /not a JSON object/],
    ["config.dump", json({ rootfsImageName: 7 }), /rootfsImageName is not a string/],
    ["config.dump", json({ rootfsImageRef: "sha256:abc" }), /64-hex/],
    ["config.dump", json({ rootfsImageName: "x", createdTime: "yesterday" }), /RFC 3339/],
    ["config.dump", json({ name: "x" }), /names no base image/],
    ["config.dump", Buffer.from([0xff, 0xfe]), /not UTF-8/],
    ["spec.dump", json({}), /annotations is not a string map/],
    ["spec.dump", json({ annotations: {} }), /io.kubernetes.cri-o.Annotations missing/],
    ["spec.dump", json({ annotations: { [CRIO_ANNOTATIONS]: "nope" } }), /is not JSON/],
    ["spec.dump", json({ annotations: { [CRIO_ANNOTATIONS]: "[1]" } }), /not a string map/],
    ["spec.dump", spec({ mounts: [{ source: "/x" }] }), /destination/],
    ["spec.dump", spec({ mounts: [{ destination: "/a/../../etc" }] }), /destination/],
    ["spec.dump", spec({ process: "sh" }), /process is not an object/],
    ["spec.dump", spec({ linux: { maskedPaths: [1] } }), /maskedPaths is not a list of strings/],
    [
      "bind.mounts",
      json([{ source: "../x", destination: "/x", file_type: "file", permissions: 420 }]),
      /bind.mounts/,
    ],
    [
      "bind.mounts",
      json([{ source: "/x", destination: "/x", file_type: "fifo", permissions: 420 }]),
      /bind.mounts/,
    ],
    ["deleted.files", json(["/etc/../../../root/.ssh"]), /deleted.files/],
    ["deleted.files", json({}), /deleted.files is not a list/],
    ["checkpoint/inventory.img", criuImage(CRIU_MAGIC.common), /inventory.img is not a CRIU image/],
    [
      "checkpoint/core-1.img",
      criuImage(CRIU_MAGIC.common, CRIU_MAGIC.pstree),
      /core-1.img is not a CRIU image/,
    ],
    ["checkpoint/pstree.img", Buffer.alloc(0), /pstree.img is not a CRIU image/],
  ])("refuses %s = %s", (name, data, message) => {
    expect(check(tarOf(replacing(name, data)))).toMatch(message);
  });

  it("refuses oversized metadata without buffering it", () => {
    expect(check(tarOf(replacing("config.dump", " ".repeat(2 * 1024 * 1024))))).toMatch(/larger than/);
  });

  it.each([
    ["unknown top-level file", "evil.sh", /unexpected entry/],
    ["unknown top-level directory", "etc/", /unexpected/],
    ["backslash", "checkpoint/a\\b.img", /backslash/],
    ["Windows device name", "checkpoint/CON.img", /Windows device name/],
    ["Windows device name, lower case with extension", "checkpoint/lpt1.txt", /Windows device name/],
    ["reserved character", "checkpoint/a:b", /reserved on Windows/],
    ["trailing dot", "checkpoint/a.", /ending in a dot/],
    ["trailing space", "checkpoint/a ", /ending in a dot or a space/],
    ["control character", "checkpoint/a\u0001b", /control character/],
    ["overlong component", `checkpoint/${"a".repeat(256)}`, /longer than 255 bytes/],
  ])("refuses a name that is unsafe elsewhere: %s", (_what, name, message) => {
    // PAX path: names longer than 100 bytes and any byte the ustar field cannot hold.
    const paxed: RawEntry[] = [
      { name: "pax", type: "x", data: paxRecord("path", name) },
      { name: "placeholder", data: Buffer.from("x") },
    ];
    expect(check(tarOf([...entries(), ...paxed]))).toMatch(message);
  });

  it("refuses names that collide on case-insensitive or normalizing file systems", () => {
    expect(check(tarOf([...entries(), { name: "checkpoint/PSTREE.img", data: Buffer.from("x") }]))).toMatch(
      /differing only in case/,
    );
    const nfc = "checkpoint/\u00e9.img";
    const nfd = "checkpoint/e\u0301.img";
    const e: RawEntry[] = [
      { name: "pax", type: "x", data: paxRecord("path", nfc) },
      { name: "a", data: Buffer.from("x") },
      { name: "pax", type: "x", data: paxRecord("path", nfd) },
      { name: "b", data: Buffer.from("x") },
    ];
    expect(check(tarOf([...entries(), ...e]))).toMatch(/Unicode normalization/);
  });

  it("refuses invalid UTF-8 names", () => {
    const h = tarOf([...entries(), { name: "checkpoint/x.img", data: Buffer.from("x") }]);
    // Patch the last entry's name byte and fix its checksum.
    const at = h.length - 1024 - 1024;
    h[at + 11] = 0xff;
    h.fill(0x20, at + 148, at + 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += h[at + i]!;
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", at + 148, "ascii");
    expect(check(h)).toMatch(/not valid UTF-8/);
  });

  it("refuses links of any kind, and a regular file named checkpoint", () => {
    expect(check(tarOf([...entries(), { name: "checkpoint/l", type: "2", linkname: "pstree.img" }]))).toMatch(
      /link/,
    );
    expect(
      check(tarOf([...entries(), { name: "checkpoint/h", type: "1", linkname: "checkpoint/pstree.img" }])),
    ).toMatch(/link/);
    expect(check(tarOf([{ name: "checkpoint", data: Buffer.from("x") }, ...entries().slice(1)]))).toMatch(
      /not a directory|below non-directory/,
    );
  });

  it("inspects rootfs-diff.tar as an archive of its own", () => {
    const nested = (e: RawEntry[]) =>
      check(tarOf([...entries(), { name: "rootfs-diff.tar", data: tarOf(e) }]));
    expect(nested([{ name: "../../etc/cron.d/x", data: Buffer.from("x") }])).toMatch(
      /rootfs-diff.tar: .*'\.\.'/,
    );
    expect(nested([{ name: "/etc/passwd", data: Buffer.from("x") }])).toMatch(
      /rootfs-diff.tar: absolute path/,
    );
    expect(nested([{ name: "dev/mem", type: "3" }])).toMatch(/rootfs-diff.tar: device node/);
    expect(nested([{ name: "l", type: "2", linkname: "../../.." }])).toMatch(
      /rootfs-diff.tar: symlink escaping/,
    );
    // Linux names are fine inside the container's own files.
    expect(nested([{ name: "tmp/a:b", data: Buffer.from("x") }])).toBe("ok");
    expect(check(tarOf([...entries(), { name: "rootfs-diff.tar", data: Buffer.from("not a tar") }]))).toMatch(
      /rootfs-diff.tar/,
    );
  });
});

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  return Buffer.from(`${len}${body}`);
}
