// kubectl ms2m status [NAME]: the migrations of a namespace (or all, -A) as `kubectl get smig`
// lists them; with a name, one migration: route, failure, replay, conditions, containers and the
// per-phase timings.
import type { Command } from "../command.ts";
import { getMigration, listMigrations } from "../kube.ts";
import { printObject } from "../output.ts";
import { details, listTable } from "../present.ts";

export const statusCommand: Command = {
  name: "status",
  summary: "Show migrations, or one migration's phases, timings and conditions",
  usage: `kubectl ms2m status [NAME] [-A]

  -A, --all-namespaces   every namespace (without NAME)`,
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
