// The ms2m node simulator's stand-in for CRIU (docs/simulator.md). Not part of the workload API:
// on real nodes CRIU dumps and restores the whole process, and the process needs none of this.
// The simulator cannot dump memory, so a process it runs cooperates instead:
//  - MS2M_CHECKPOINT_SOCKET: serve HTTP on this unix socket; POST /checkpoint answers 200 with
//    the process state as opaque bytes. The process keeps running afterwards, as under CRIU.
//  - MS2M_RESTORE_FROM: set on the fresh process that stands for the restored one: a file holding
//    exactly those bytes; load it before consuming anything, and hand the SDK's part to
//    MigratingConsumer's `restored` option.
// Neither variable exists under a real runtime, so both helpers then do nothing.
import { readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";

export type StateProvider = () => Uint8Array | Promise<Uint8Array>;

export interface CheckpointServer {
  close(): Promise<void>;
}

/** Serves POST /checkpoint on `socketPath` (default: env MS2M_CHECKPOINT_SOCKET). No socket: no server. */
export async function serveCheckpoints(
  getState: StateProvider,
  socketPath: string | undefined = process.env.MS2M_CHECKPOINT_SOCKET,
): Promise<CheckpointServer | undefined> {
  if (!socketPath) return undefined;
  rmSync(socketPath, { force: true }); // a stale socket from a previous run would make listen fail
  const server: Server = createServer((req, res) => {
    if (req.method !== "POST" || req.url?.split("?")[0] !== "/checkpoint") {
      res.writeHead(404).end();
      return;
    }
    req.resume();
    Promise.resolve()
      .then(getState)
      .then(
        (state) => {
          res.writeHead(200, {
            "content-type": "application/octet-stream",
            "content-length": state.byteLength,
          });
          res.end(state);
        },
        (err: unknown) => {
          res
            .writeHead(500, { "content-type": "text/plain" })
            .end(err instanceof Error ? err.message : "failed");
        },
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The checkpointed bytes if this process was restored (env MS2M_RESTORE_FROM), else undefined. */
export function loadRestoredState(
  path: string | undefined = process.env.MS2M_RESTORE_FROM,
): Buffer | undefined {
  if (!path) return undefined;
  return readFileSync(path);
}
