import { describe, expect, it } from "vitest";
import { Authenticator } from "../../../src/agent/auth.ts";
import { FakeReviewer, TOKENS } from "../../../tooling/agent-fixture.ts";

describe("Authenticator", () => {
  it("maps outcomes to 401/403/503 and caches decisions by token hash", async () => {
    const r = new FakeReviewer();
    const a = new Authenticator(r, "node-1", { ttlMs: 60_000 });
    await expect(a.check(undefined, "receive")).rejects.toMatchObject({ code: 401 });
    await expect(a.check("Basic abc", "receive")).rejects.toMatchObject({ code: 401 });
    await expect(a.check("Bearer nope", "receive")).rejects.toMatchObject({ code: 401 });
    await expect(a.check(`Bearer ${TOKENS.noRights}`, "receive")).rejects.toMatchObject({ code: 403 });
    await expect(a.check(`Bearer ${TOKENS.user}`, "receive")).rejects.toMatchObject({ code: 403 });
    const p = await a.check(`Bearer ${TOKENS.agent}`, "receive");
    expect(p.serviceAccount).toBe("ms2m-system/ms2m-agent");
    await expect(a.check(`Bearer ${TOKENS.agent}`, "send")).rejects.toMatchObject({ code: 403 });
    const calls = r.calls.authenticate;
    await a.check(`Bearer ${TOKENS.agent}`, "receive");
    expect(r.calls.authenticate).toBe(calls);
  });

  it("never caches an outage", async () => {
    const r = new FakeReviewer();
    const a = new Authenticator(r, "node-1", { ttlMs: 60_000 });
    r.down = true;
    await expect(a.check(`Bearer ${TOKENS.agent}`, "receive")).rejects.toMatchObject({ code: 503 });
    r.down = false;
    await expect(a.check(`Bearer ${TOKENS.agent}`, "receive")).resolves.toBeTruthy();
  });
});
