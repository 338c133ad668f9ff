import { describe, expect, it } from "vitest";
import { parseProducerLog } from "../../../workload/accounting.ts";
import { fromRanges, toRanges } from "../../../workload/state.ts";

describe("workload state and accounting", () => {
  it("compresses applied sequence numbers into ranges", () => {
    expect(toRanges([5, 1, 2, 3, 7, 2])).toEqual([
      [1, 3],
      [5, 5],
      [7, 7],
    ]);
    expect(fromRanges([[1, 3]])).toEqual([1, 2, 3]);
    expect(parseProducerLog("1\n2\n\n3\n")).toEqual([1, 2, 3]);
  });
});
