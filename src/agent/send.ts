// The send side, shared by the agent server (`POST /v1/send`) and the one-shot transfer Job
// (`src/agent/jobs/send.ts`): reads one archive from the kubelet checkpoints folder — only the one the
// caller named, after checking it is directly in that folder and is the checkpoint of exactly
// the request's pod/namespace/container — and streams it to the target node's agent (Direct) or
// pushes it as an OCI checkpoint image (Registry). One read of the file either way.
import { readFile } from "node:fs/promises";
import { Ms2mError } from "../common/errors.ts";
import { sendArchive } from "../checkpoint/direct.ts";
import { parseImageReference } from "../checkpoint/image.ts";
import {
  parseRegistryCredentials,
  pushCheckpointImage,
  type RegistryOptions,
} from "../checkpoint/registry.ts";
import { AGENT_SERVER_NAME } from "../transfer/client.ts";
import type { SendRequest, SendResponse } from "../transfer/types.ts";
import { openArchive, resolveArchiveName } from "../checkpoint/kubelet-archives.ts";

/** The settings a sender needs (a subset of the agent's configuration). */
export interface SenderConfig {
  AGENT_CHECKPOINTS_DIR: string;
  AGENT_MAX_ARCHIVE_BYTES: number;
  /** CA of the agents' serving certificates (Direct). */
  AGENT_TLS_CA_FILE?: string | undefined;
  AGENT_INSECURE_REGISTRIES: string[];
  AGENT_REGISTRY_CA_FILE?: string | undefined;
  AGENT_REGISTRY_CREDENTIALS_FILE?: string | undefined;
  /** No bytes either way for this long = the target agent or registry is dead (default 15 s). */
  AGENT_PROGRESS_TIMEOUT_SECONDS?: number | undefined;
}

export interface SendOptions {
  /** Token presented to the target agent (projected, audience ms2m-agent). */
  token: () => Promise<string>;
  signal?: AbortSignal | undefined;
  onBytes?: (n: number) => void;
  /** What the checkpoint record says, when there is one: the archive must still match it. */
  expected?: { size?: number | undefined; digest?: string | undefined };
}

export interface SendOutcome {
  result: SendResponse;
  /** Registry: the pushed manifest's digest (for a later delete). */
  manifestDigest?: string;
  /** The archive that was read (inside AGENT_CHECKPOINTS_DIR). */
  path: string;
}

/** Registry connection options from the configuration (CA and credentials re-read per call). */
export async function registryOptions(
  config: Pick<
    SenderConfig,
    "AGENT_INSECURE_REGISTRIES" | "AGENT_REGISTRY_CA_FILE" | "AGENT_REGISTRY_CREDENTIALS_FILE"
  >,
): Promise<RegistryOptions> {
  const opts: RegistryOptions = { insecureHosts: config.AGENT_INSECURE_REGISTRIES };
  if (config.AGENT_REGISTRY_CA_FILE) opts.ca = await readFile(config.AGENT_REGISTRY_CA_FILE);
  if (config.AGENT_REGISTRY_CREDENTIALS_FILE) {
    // "user:password", or a docker config JSON (kubernetes.io/dockerconfigjson), per host
    opts.auth = parseRegistryCredentials(await readFile(config.AGENT_REGISTRY_CREDENTIALS_FILE, "utf8"));
  }
  return opts;
}

function progressMs(config: Pick<SenderConfig, "AGENT_PROGRESS_TIMEOUT_SECONDS">): number | undefined {
  return config.AGENT_PROGRESS_TIMEOUT_SECONDS !== undefined
    ? config.AGENT_PROGRESS_TIMEOUT_SECONDS * 1000
    : undefined;
}

/** The archive path a request names, or Forbidden (outside the folder, another checkpoint). */
export function archivePathOf(config: SenderConfig, req: SendRequest): string {
  return resolveArchiveName(config.AGENT_CHECKPOINTS_DIR, req.archive, req);
}

/**
 * Sends the archive `req` names to its destination. Never deletes the archive (the caller
 * decides: the agent removes unrecorded archives, the Job cannot write the folder).
 */
export async function sendCheckpoint(
  config: SenderConfig,
  req: SendRequest,
  opts: SendOptions,
): Promise<SendOutcome> {
  const path = archivePathOf(config, req);
  const { handle, size } = await openArchive(path);
  const started = performance.now();
  try {
    if (size > config.AGENT_MAX_ARCHIVE_BYTES)
      throw new Ms2mError("RequestEntityTooLarge", "archive exceeds the maximum size");
    if (opts.expected?.size !== undefined && opts.expected.size !== size)
      throw new Ms2mError("Conflict", "archive size differs from the recorded checkpoint", {
        retriable: false,
      });
    const stream = handle.createReadStream({ highWaterMark: 1024 * 1024, autoClose: false });
    let result: SendResponse;
    let manifestDigest: string | undefined;
    if (req.destination.type === "agent") {
      if (req.encryption)
        throw new Ms2mError("BadRequest", "encryption is for registry destinations (Direct goes over TLS)", {
          retriable: false,
        });
      if (parseImageReference(req.destination.image).host !== "localhost")
        throw new Ms2mError("BadRequest", "target image must be named localhost/<repo>:<tag>");
      if (!config.AGENT_TLS_CA_FILE)
        throw new Ms2mError("BadRequest", "no CA configured to verify the target agent", {
          retriable: false,
        });
      const r = await sendArchive(
        stream,
        {
          container: req.container,
          image: req.destination.image,
          migration: req.migration,
          workloadUid: req.workload?.uid,
        },
        {
          url: req.destination.url,
          token: await opts.token(),
          ca: await readFile(config.AGENT_TLS_CA_FILE),
          servername: AGENT_SERVER_NAME,
          size,
          maxBytes: config.AGENT_MAX_ARCHIVE_BYTES,
          signal: opts.signal,
          // recorded at checkpoint time: not hashed again here, the target verifies it
          digest: opts.expected?.digest,
          progressTimeoutMs: progressMs(config),
          ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
        },
      );
      result = {
        image: r.image,
        digest: r.digest,
        size: r.size,
        seconds: (performance.now() - started) / 1000,
        targetLoadSeconds: r.loadSeconds,
      };
    } else {
      const r = await pushCheckpointImage(stream, req.destination.image, req.container, {
        ...(await registryOptions(config)),
        maxBytes: config.AGENT_MAX_ARCHIVE_BYTES,
        expectedSize: size,
        // recorded at checkpoint time: not hashed again here, the registry verifies it
        expectedDigest: opts.expected?.digest,
        encryptTo: req.encryption?.recipients,
        // Whose checkpoint it is, on the manifest: the lifecycle sweep and the pull check read it.
        origin: { migrationUid: req.migration, workloadUid: req.workload?.uid },
        signal: opts.signal,
        ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
      });
      result = {
        image: r.image,
        digest: r.layerDigest,
        size: r.size,
        seconds: (performance.now() - started) / 1000,
      };
      manifestDigest = r.manifestDigest;
    }
    if (opts.expected?.digest && result.digest !== opts.expected.digest)
      throw new Ms2mError("Conflict", "archive digest differs from the recorded checkpoint", {
        retriable: false,
      });
    return manifestDigest ? { result, manifestDigest, path } : { result, path };
  } finally {
    await handle.close();
  }
}
