import { writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { loadRestoredState, serveCheckpoints } from "../../../src/sdk/simulated-runtime.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

describe("simulated runtime: checkpoint contract helpers", () => {
  it("serves POST /checkpoint on a unix socket with the state bytes; 404 otherwise", async () => {
    const dir = tempDir("ckpt");
    onTestFinished(() => removeTempDir(dir));
    const socketPath = join(dir, "ckpt.sock");
    const server = await serveCheckpoints(() => Buffer.from("state-42"), socketPath);
    const call = (method: string, path: string) =>
      new Promise<{ status: number; body: string; type?: string }>((resolve, reject) => {
        const req = request({ socketPath, method, path }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString(),
              type: res.headers["content-type"],
            }),
          );
        });
        req.on("error", reject);
        req.end();
      });
    expect(await call("POST", "/checkpoint")).toEqual({
      status: 200,
      body: "state-42",
      type: "application/octet-stream",
    });
    expect((await call("GET", "/checkpoint")).status).toBe(404);
    await server?.close();
    expect(await serveCheckpoints(() => Buffer.alloc(0), undefined)).toBeUndefined();
  });

  it("loads restored bytes only when MS2M_RESTORE_FROM is set", () => {
    const dir = tempDir("restore");
    onTestFinished(() => removeTempDir(dir));
    const file = join(dir, "state");
    writeFileSync(file, Buffer.from([1, 2, 3]));
    expect(loadRestoredState(file)).toEqual(Buffer.from([1, 2, 3]));
    expect(loadRestoredState(undefined)).toBeUndefined();
  });
});
