// The live view of a migration while `migrate --wait` waits: on a terminal, one line per phase
// redrawn in place (done, running with its clock, to come); elsewhere (pipes, CI logs), one line
// per phase as it starts, with the time since the migration was created.
import type { StatefulMigration } from "../api/v1alpha1/statefulmigration.ts";
import { paint, seconds, type Io } from "./output.ts";
import { timingMillis, workPhases } from "./present.ts";

const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export class Progress {
  private readonly io: Io;
  private drawn = 0;
  private frame = 0;
  private readonly announced = new Set<string>();
  private started: number;
  private based = false;

  constructor(io: Io, started: number) {
    this.io = io;
    this.started = started;
  }

  update(m: StatefulMigration): void {
    if (this.io.tty) this.redraw(m);
    else this.append(m);
  }

  private lines(m: StatefulMigration): string[] {
    const now = this.io.now();
    const timings = new Map((m.status?.phaseTimings ?? []).map((t) => [t.phase, t]));
    const phase = m.status?.phase ?? "";
    const failedIn = m.status?.failure?.phase;
    this.frame = (this.frame + 1) % spinner.length;
    return workPhases.map((p) => {
      const t = timings.get(p);
      const name = p.padEnd(14);
      if (!t) return `  ${paint(this.io, "gray", `· ${name}`)}`;
      const ms = seconds(timingMillis(t, now)).padStart(9);
      if (failedIn === p && phase === "Failed") return `  ${paint(this.io, "red", "✗")} ${name}${ms}`;
      if (!t.endTime && phase === p)
        return `  ${paint(this.io, "yellow", spinner[this.frame]!)} ${name}${ms}`;
      return `  ${paint(this.io, "green", "✓")} ${name}${ms}`;
    });
  }

  private redraw(m: StatefulMigration): void {
    const lines = this.lines(m);
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : "";
    for (const l of lines) text += `\x1b[2K${l}\n`;
    this.drawn = lines.length;
    this.io.out(text);
  }

  private append(m: StatefulMigration): void {
    // Times from the migration's first phase (creationTimestamp has whole seconds only).
    const first = m.status?.phaseTimings?.[0];
    if (!this.based && first) {
      this.started = Date.parse(first.startTime);
      this.based = true;
    }
    for (const t of m.status?.phaseTimings ?? []) {
      if (this.announced.has(t.phase)) continue;
      this.announced.add(t.phase);
      const at = (Date.parse(t.startTime) - this.started) / 1000;
      this.io.out(`[${at.toFixed(1).padStart(6)} s] ${t.phase}\n`);
    }
    const phase = m.status?.phase;
    if ((phase === "Completed" || phase === "Failed") && !this.announced.has(phase)) {
      this.announced.add(phase);
      const end = m.status?.completionTime ? Date.parse(m.status.completionTime) : this.io.now();
      this.io.out(`[${((end - this.started) / 1000).toFixed(1).padStart(6)} s] ${phase}\n`);
    }
  }
}
