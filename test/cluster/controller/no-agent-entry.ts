// The ms2m-agent image on a node where no agent serves: the DaemonSet's container runs but never
// listens (so it is never Ready, and the controller finds no agent there), while the transfer
// Job's `send` and the cleanup Job's `cleanup` subcommands run the real agent image code
// (test/harness/agent-entry.ts).
if (process.argv[2] === "send" || process.argv[2] === "cleanup") {
  await import("../../../tooling/stack/agent-entry.ts");
} else {
  process.on("SIGTERM", () => process.exit(0));
  setInterval(() => undefined, 60_000);
}
