// kubectl ms2m status [NAME]: the migrations of a namespace (or all, -A) as `kubectl get smig`
// lists them; with a name, one migration: route, failure, replay, conditions, containers and the
// per-phase timings.
import type { Command } from "../command.ts";
import { getMigration, listMigrations } from "../kube.ts";
import { printObject } from "../output.ts";
import { details, listTable } from "../present.ts";

export const statusCommand: Command = {
  name: "status",
  summary: "List migrations, or show one: route, phases, timings, conditions",
  usage: "kubectl ms2m status [NAME] [-A]",
  description: `Without NAME, the namespace's StatefulMigrations as \`kubectl get smig\` lists them (-A: every
namespace). With NAME, one migration: where from and where to, its failure and rollback if any,
the replay, the per-phase timings, its conditions and its containers' checkpoints.`,
  flags: "  -A, --all-namespaces   every namespace (without NAME)",
  examples: `  kubectl ms2m status -A
  kubectl ms2m status consumer-to-node-b -n shop
  kubectl ms2m status consumer-to-node-b -o yaml`,
  exitCodes: {
    0: "shown (also when there are none)",
    1: "NAME not found, or the cluster does not serve StatefulMigrations (ms2m not installed)",
  },
  options: { "all-namespaces": { type: "boolean", short: "A" } },
  positionals: { min: 0, max: 1 },
  async run(ctx, [name], flags) {
    const kube = ctx.kube();
    const { io } = ctx;
    if (name) {
      const m = await getMigration(kube, kube.namespace, name);
      if (!m) throw new Error(`statefulmigration ${kube.namespace}/${name} not found`);
      if (ctx.format === "human") io.out(details(io, m, io.now()));
      else printObject(io, ctx.format, m);
      return 0;
    }
    const all = Boolean(flags["all-namespaces"]);
    const items = await listMigrations(kube, all ? undefined : kube.namespace);
    if (ctx.format !== "human") {
      printObject(io, ctx.format, { apiVersion: "v1", kind: "List", items });
      return 0;
    }
    if (items.length === 0) {
      io.err(all ? "No migrations found.\n" : `No migrations found in ${kube.namespace} namespace.\n`);
      return 0;
    }
    io.out(listTable(items, io.now(), all));
    return 0;
  },
};
