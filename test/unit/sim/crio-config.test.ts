import { describe, expect, it } from "vitest";
import { parseCrioConfig } from "../../../src/checkpoint/runtime-config.ts";
import { crioDropIn, SIM_CRIO_DROP_IN } from "../../../sim/crio-config.ts";

describe("the simulated node's CRI-O configuration", () => {
  it.each([true, false])(
    "criuSupport %s is the drop-in's enable_criu_support, as the agent reads it",
    (on) => {
      const parsed = parseCrioConfig([{ path: SIM_CRIO_DROP_IN, text: crioDropIn({ criuSupport: on }) }]);
      expect(parsed.problem).toBeUndefined();
      expect(parsed.settings).toEqual({
        enable_criu_support: { value: on, file: SIM_CRIO_DROP_IN, table: "[crio.runtime]" },
      });
    },
  );
});
