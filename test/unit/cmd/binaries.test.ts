import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// Both binaries validate their environment before doing anything: bad configuration gives
// a message naming each bad variable and exit code 2 (a usage error), and nothing starts.
const repo = (rel: string) => fileURLToPath(new URL(`../../../${rel}`, import.meta.url));

function start(entry: string, env: Record<string, string>) {
  return spawnSync(process.execPath, [repo(entry)], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    encoding: "utf8",
    // Loading a binary's sources (type stripping) has taken over 20 s on a loaded 2-core machine.
    timeout: 60_000,
  });
}

interface Case {
  name: string;
  env: Record<string, string>;
  mentions: string[];
}

const binaries: { binary: string; entry: string; cases: Case[] }[] = [
  {
    binary: "ms2m-controller",
    entry: "cmd/ms2m-controller/main.ts",
    cases: [
      { name: "a port out of range", env: { METRICS_PORT: "70000" }, mentions: ["METRICS_PORT"] },
      { name: "a port that is not a number", env: { HEALTH_PORT: "eighty" }, mentions: ["HEALTH_PORT"] },
      { name: "an unknown log level", env: { LOG_LEVEL: "loud" }, mentions: ["LOG_LEVEL"] },
      { name: "a non-boolean switch", env: { LEADER_ELECT: "maybe" }, mentions: ["LEADER_ELECT"] },
      {
        name: "several problems at once",
        env: { METRICS_PORT: "-1", LOG_LEVEL: "loud" },
        mentions: ["METRICS_PORT", "LOG_LEVEL"],
      },
    ],
  },
  {
    binary: "ms2m-agent",
    entry: "cmd/ms2m-agent/main.ts",
    cases: [
      {
        name: "missing TLS files and node name",
        env: {},
        mentions: ["NODE_NAME", "AGENT_TLS_CERT_FILE", "AGENT_TLS_KEY_FILE"],
      },
      {
        name: "an invalid node name and port",
        env: { NODE_NAME: "Bad_Node", AGENT_PORT: "99999" },
        mentions: ["NODE_NAME", "AGENT_PORT"],
      },
      {
        name: "a relative path",
        env: { NODE_NAME: "node-a", AGENT_TLS_CERT_FILE: "tls.crt" },
        mentions: ["AGENT_TLS_CERT_FILE", "absolute path"],
      },
    ],
  },
];

describe.each(binaries)("$binary configuration", ({ binary, entry, cases }) => {
  it.each(cases.map((c) => [c.name, c] as const))(
    "rejects %s with exit code 2",
    (_name, c) => {
      const res = start(entry, { LOG_LEVEL: "info", ...c.env });
      expect(res.status).toBe(2);
      expect(res.stderr).toContain(`${binary}: invalid configuration`);
      for (const word of c.mentions) expect(res.stderr).toContain(word);
      // Nothing else ran: no log lines of a started process.
      expect(res.stdout).toBe("");
    },
    90_000,
  );
});
