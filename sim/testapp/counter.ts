// A counter that implements the simulator's checkpoint contract, for the simulator's own tests.
//  - counts up every COUNTER_INTERVAL_MS (default 100) and logs `count=<n> pod=<name> host=<hostname>`;
//  - POST /checkpoint on MS2M_CHECKPOINT_SOCKET answers {"count": n} and keeps counting;
//  - started with MS2M_RESTORE_FROM, it continues from the saved count;
//  - SIGTERM exits 0 unless IGNORE_SIGTERM=1 (then only SIGKILL ends it).
import { readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";

// Plain stdout lines: the container log is what the tests read.
const say = (line: string) => process.stdout.write(line + "\n");

const interval = Number(process.env.COUNTER_INTERVAL_MS ?? "100");
let count = 0;
let restored = false;
if (process.env.MS2M_RESTORE_FROM) {
  const state = JSON.parse(readFileSync(process.env.MS2M_RESTORE_FROM, "utf8")) as { count: number };
  count = state.count;
  restored = true;
}

function podName(): string {
  const file = process.env.MS2M_POD_NAME_FILE;
  if (file) {
    try {
      return readFileSync(file, "utf8").trim();
    } catch {
      // fall through
    }
  }
  return process.env.POD_NAME ?? "?";
}

say(`start count=${count} restored=${restored} pod=${podName()} host=${process.env.HOSTNAME ?? ""}`);
setInterval(() => {
  count++;
  say(`count=${count} pod=${podName()} host=${process.env.HOSTNAME ?? ""}`);
}, interval);

const socket = process.env.MS2M_CHECKPOINT_SOCKET;
if (socket) {
  rmSync(socket, { force: true });
  createServer((req, res) => {
    req.resume();
    if (req.method === "POST" && req.url === "/checkpoint") {
      const body = JSON.stringify({ count });
      say(`checkpoint count=${count}`);
      res.writeHead(200, { "content-type": "application/octet-stream" }).end(body);
    } else {
      res.writeHead(404).end();
    }
  }).listen(socket);
}

process.on("SIGTERM", () => {
  if (process.env.IGNORE_SIGTERM === "1") {
    say("SIGTERM ignored");
    return;
  }
  say(`SIGTERM count=${count}`);
  process.exit(0);
});
