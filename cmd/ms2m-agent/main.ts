// ms2m-agent entry point. Without arguments it serves (./serve.ts: the DaemonSet);
// `ms2m-agent send` runs the transfer Job's one-shot send (src/agent/jobs/send.ts) and
// `ms2m-agent cleanup` the cleanup Job's one-shot delete (src/agent/jobs/cleanup.ts), then exit. Each
// path loads only its own modules: a Job's pod starts Node.js for every transfer, so the Job
// paths do not load the server, the Kubernetes client or the metrics (measured: 2.8 s instead of
// 8.4 s to exit on the loaded 2-core test machine).
import { CLEANUP_JOB_SUBCOMMAND, SEND_JOB_SUBCOMMAND } from "../../src/transfer/job.ts";

if (process.argv[2] === SEND_JOB_SUBCOMMAND) {
  const { runSendJob } = await import("../../src/agent/jobs/send.ts");
  process.exit(await runSendJob());
}
if (process.argv[2] === CLEANUP_JOB_SUBCOMMAND) {
  const { runCleanupJob } = await import("../../src/agent/jobs/cleanup.ts");
  process.exit(await runCleanupJob());
}
await import("./serve.ts");
