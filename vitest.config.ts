import { defineConfig } from "vitest/config";

// Three projects, by what a test needs:
//  - unit:      nothing outside the process (fakes only)
//  - component: real RabbitMQ, skopeo, containers-storage, registry; no Kubernetes
//  - cluster:   a real control plane, started once per run by test/harness/global-setup.ts
//  - real:      the same with real nodes (kubelet + CRI-O + runc + CRIU) and the project's images
//  - long:      chaos matrices on the same kind of control plane (`make test-long`; not in `make test`)
// Every project starts with test/harness/global-setup-temp.ts: a run that leaves ms2m-* temp
// folders behind fails.
const TEMP_CHECK = "test/harness/global-setup-temp.ts";
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 240_000,
    pool: "forks",
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], globalSetup: [TEMP_CHECK] },
      },
      {
        extends: true,
        test: { name: "component", include: ["test/component/**/*.test.ts"], globalSetup: [TEMP_CHECK] },
      },
      {
        extends: true,
        test: {
          name: "cluster",
          include: ["test/cluster/**/*.test.ts"],
          globalSetup: [TEMP_CHECK, "test/harness/global-setup.ts"],
          // One shared control plane, and each file runs its own controller: files must run
          // one after another. Per-project fileParallelism is not honoured when several
          // projects run together, so hack/run-tests.ts and the Makefile also pass
          // --no-file-parallelism to the cluster pass.
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: "real",
          include: ["test/real/**/*.test.ts"],
          globalSetup: [TEMP_CHECK, "test/harness/global-setup-real.ts"],
          // Real nodes: one shared pair, one controller per file (as the cluster project).
          fileParallelism: false,
        },
      },
      // Only defined when asked for (`make test-long`), so a plain `vitest run` never runs it.
      ...(process.env["MS2M_TEST_LONG"] === "1"
        ? [
            {
              extends: true,
              test: {
                name: "long",
                include: ["test/long/**/*.test.ts"],
                globalSetup: [TEMP_CHECK, "test/harness/global-setup.ts", "test/long/chaos/report.ts"],
                fileParallelism: false,
              },
            },
          ]
        : []),
    ],
  },
});
