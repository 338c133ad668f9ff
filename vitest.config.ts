import { defineConfig } from "vitest/config";

// Three projects, by what a test needs:
//  - unit:      nothing outside the process (fakes only)
//  - component: real RabbitMQ, skopeo, containers-storage, registry; no Kubernetes
//  - cluster:   a real control plane, started once per run by test/harness/global-setup.ts
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 240_000,
    pool: "forks",
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      { extends: true, test: { name: "component", include: ["test/component/**/*.test.ts"] } },
      {
        extends: true,
        test: {
          name: "cluster",
          include: ["test/cluster/**/*.test.ts"],
          globalSetup: ["test/harness/global-setup.ts"],
          // One shared control plane: files run one after another to keep timing honest on 2 cores.
          fileParallelism: false,
        },
      },
    ],
  },
});
