import { describe, expect, it } from "vitest";
import {
  cleanupRequestSchema,
  encodeCleanupJobResult,
  parseCleanupJobResult,
  parseSendJobResult,
} from "../../../src/transfer/job.ts";
import { archive, request, uid } from "../controller/adapters/transfer-job/fixtures.ts";

describe("transfer Job spec", () => {
  it("reads the Job's termination message, and nothing else", () => {
    const ok = {
      ok: true,
      result: { image: "x/y:z", digest: `sha256:${"a".repeat(64)}`, size: 10, seconds: 0.1 },
    };
    expect(parseSendJobResult(JSON.stringify(ok))).toEqual(ok);
    const bad = { ok: false, reason: "Forbidden", message: "no", retriable: false };
    expect(parseSendJobResult(JSON.stringify(bad))).toEqual(bad);
    expect(parseSendJobResult("")).toBeUndefined();
    expect(parseSendJobResult("Error: boom")).toBeUndefined();
    expect(parseSendJobResult(JSON.stringify({ ok: true }))).toBeUndefined();
  });
});

describe("cleanup request and result", () => {
  it("accepts a request of archives and images", () => {
    const ok = cleanupRequestSchema.parse({
      migration: uid,
      namespace: "shop",
      pod: "web-0",
      archives: [{ container: "app", archive }],
      registryImages: [{ image: "r:5000/x:y", manifestDigest: `sha256:${"a".repeat(64)}` }],
    });
    expect(ok.archives).toHaveLength(1);
    expect(cleanupRequestSchema.parse({ migration: uid, namespace: "shop", pod: "web-0" })).toEqual(
      request(),
    );
  });

  it.each([
    ["an unknown field", { extra: 1 }],
    ["a bad namespace", { namespace: "Shop/../x" }],
    ["a bad container", { archives: [{ container: "../app", archive }] }],
    ["an empty archive", { archives: [{ container: "app", archive: "" }] }],
    ["a huge archive name", { archives: [{ container: "app", archive: "a".repeat(5000) }] }],
    ["too many archives", { archives: Array.from({ length: 17 }, () => ({ container: "app", archive })) }],
    ["too many images", { registryImages: Array.from({ length: 17 }, () => ({ image: "r:5000/x:y" })) }],
    ["a bad manifest digest", { registryImages: [{ image: "r:5000/x:y", manifestDigest: "md5:1" }] }],
    ["an unknown item field", { registryImages: [{ image: "r:5000/x:y", path: "/etc" }] }],
  ])("rejects %s", (_, patch) => {
    expect(cleanupRequestSchema.safeParse({ ...request(), ...patch }).success).toBe(false);
  });

  it("the result always fits the 4096-byte termination message and parses back", () => {
    const items = Array.from({ length: 32 }, (_, n) => ({
      kind: "image" as const,
      name: `registry.example.com/${"r".repeat(400)}:${n}`,
      outcome: "refused" as const,
      message: "x".repeat(1000),
    }));
    const text = encodeCleanupJobResult({ ok: false, items });
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(4096);
    const back = parseCleanupJobResult(text)!;
    expect(back.ok).toBe(false);
    expect(back.items.length + (back.omitted ?? 0)).toBe(32);
    const small = {
      ok: true,
      items: [{ kind: "archive" as const, name: "a.tar", outcome: "deleted" as const }],
    };
    expect(parseCleanupJobResult(encodeCleanupJobResult(small))).toEqual(small);
    expect(parseCleanupJobResult("Error: boom")).toBeUndefined();
    expect(parseCleanupJobResult(JSON.stringify({ ok: true }))).toBeUndefined();
  });
});
