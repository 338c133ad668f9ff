import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { review, type Decider } from "../../../../src/controller/eviction/webhook.ts";

const log = pino({ level: "silent" });
const eviction = {
  uid: "req-1",
  resource: { group: "", version: "v1", resource: "pods" },
  subResource: "eviction",
  operation: "CREATE",
  name: "web-1",
  namespace: "ns",
};

describe("review (AdmissionReview for pods/eviction)", () => {
  it("turns a 429 answer into a denial with the Status the eviction API would give", async () => {
    const decider: Decider = async () => ({
      allowed: false,
      code: 429,
      reason: "TooManyRequests",
      message: "moving live",
    });
    expect(await review(eviction, decider, log)).toEqual({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: {
        uid: "req-1",
        allowed: false,
        status: { status: "Failure", code: 429, reason: "TooManyRequests", message: "moving live" },
      },
    });
  });

  it("passes the dry-run flag and allows what the decider allows", async () => {
    const seen: boolean[] = [];
    const decider: Decider = async (_ns, _pod, opts) => (
      seen.push(opts.dryRun),
      { allowed: true, why: "no policy" }
    );
    expect(await review({ ...eviction, dryRun: true }, decider, log)).toMatchObject({
      response: { uid: "req-1", allowed: true },
    });
    expect(seen).toEqual([true]);
  });

  it("allows anything that is not a pod eviction without asking", async () => {
    const decider: Decider = async () => {
      throw new Error("must not be called");
    };
    expect(await review({ ...eviction, subResource: "" }, decider, log)).toMatchObject({
      response: { allowed: true },
    });
  });

  it("answers 'retry' when it cannot decide (the pod is not lost to a cold restart)", async () => {
    const decider: Decider = async () => {
      throw new Error("API server unavailable");
    };
    const r = (await review(eviction, decider, log)) as {
      response: { allowed: boolean; status: { code: number; message: string } };
    };
    expect(r.response.allowed).toBe(false);
    expect(r.response.status.code).toBe(429);
    expect(r.response.status.message).toMatch(
      /could not decide whether to migrate pod web-1 live \(API server unavailable\)/,
    );
  });
});
