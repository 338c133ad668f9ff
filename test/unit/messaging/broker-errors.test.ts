import { describe, expect, it } from "vitest";
import { toMs2mError } from "../../../src/messaging/broker-errors.ts";

describe("broker error mapping", () => {
  const withCode = (code: number) => Object.assign(new Error("boom"), { code });
  it("maps channel errors to non-retriable reasons and outages to retriable ServiceUnavailable", () => {
    expect(toMs2mError(withCode(404))).toMatchObject({ reason: "NotFound", retriable: false });
    expect(toMs2mError(withCode(406))).toMatchObject({ reason: "Invalid", retriable: false });
    expect(toMs2mError(withCode(320))).toMatchObject({ reason: "ServiceUnavailable", retriable: true });
    expect(
      toMs2mError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5672"), { code: "ECONNREFUSED" })),
    ).toMatchObject({
      reason: "ServiceUnavailable",
      retriable: true,
    });
  });
});
