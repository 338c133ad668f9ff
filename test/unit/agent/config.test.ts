import { describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../../src/agent/config.ts";
import { ConfigError } from "../../../src/common/config.ts";

describe("agent configuration", () => {
  it("config errors name the variable", () => {
    expect(() => parseAgentConfig({ NODE_NAME: "n1", AGENT_PORT: "99999" })).toThrow(ConfigError);
  });
});
