// The OCI checkpoint image: one uncompressed layer that is the CRI-O checkpoint archive as is,
// OCI manifest and config media types, and the checkpoint annotation CRI-O/containerd read.
import { createHash } from "node:crypto";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Ms2mError } from "../common/errors.ts";

export const MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json";
export const MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar";
export const CHECKPOINT_NAME_ANNOTATION = "io.kubernetes.cri-o.annotations.checkpoint.name";
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
/** The migration a checkpoint image was made for (its UID): what the lifecycle sweep keys on. */
export const MIGRATION_UID_ANNOTATION = "migration.ms2m.io/migration-uid";
/** The UID of the workload (StatefulSet, ReplicaSet, or the bare pod) the checkpoint is of. */
export const WORKLOAD_UID_ANNOTATION = "migration.ms2m.io/workload-uid";

/** Whose checkpoint an image is: on the manifest, the config's labels and the layout's index. */
export interface CheckpointOrigin {
  migrationUid?: string | undefined;
  workloadUid?: string | undefined;
}

const uidRe = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The origin as annotations: only the keys that are known and have the shape of a UID (a
 * migration key that is a name, from a caller other than the controller, is not a UID).
 */
export function originAnnotations(origin: CheckpointOrigin | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (origin?.migrationUid && uidRe.test(origin.migrationUid))
    out[MIGRATION_UID_ANNOTATION] = origin.migrationUid;
  if (origin?.workloadUid && uidRe.test(origin.workloadUid))
    out[WORKLOAD_UID_ANNOTATION] = origin.workloadUid;
  return out;
}

/** The origin an image's annotations name (values that are not UIDs are ignored). */
export function originOf(annotations: Record<string, unknown> | undefined): CheckpointOrigin {
  const get = (k: string) => {
    const v = annotations?.[k];
    return typeof v === "string" && uidRe.test(v) ? v : undefined;
  };
  const migrationUid = get(MIGRATION_UID_ANNOTATION);
  const workloadUid = get(WORKLOAD_UID_ANNOTATION);
  return { ...(migrationUid ? { migrationUid } : {}), ...(workloadUid ? { workloadUid } : {}) };
}

/** Media type of a checkpoint archive on the wire (agent-to-agent). */
export const ARCHIVE_CONTENT_TYPE = "application/x-tar";

const digestRe = /^sha256:[a-f0-9]{64}$/;
// A DNS-1123 label is what a container name may be.
const containerNameRe = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// Repository path components and tag, per the distribution reference grammar (subset, lower case).
const repoRe = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagRe = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const hostRe =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$/;

export function isDigest(value: string): boolean {
  return digestRe.test(value);
}

export function assertDigest(value: string, what = "digest"): string {
  if (!digestRe.test(value)) throw new Ms2mError("BadRequest", `${what} must be sha256:<64 hex>`);
  return value;
}

export function assertContainerName(value: string): string {
  if (!containerNameRe.test(value))
    throw new Ms2mError("BadRequest", "container name must be a DNS-1123 label");
  return value;
}

export interface ImageReference {
  /** Registry host[:port], or "localhost" for a local containers-storage name. */
  host: string;
  repository: string;
  tag: string;
}

/**
 * Parses `host[:port]/repo/path:tag` strictly (a host is required, a tag is required, no digest
 * references): image names arrive from the network, so nothing is guessed.
 */
export function parseImageReference(ref: string): ImageReference {
  const bad = () =>
    new Ms2mError("BadRequest", `invalid image reference ${JSON.stringify(ref.slice(0, 300))}`);
  if (ref.length > 512) throw bad();
  const slash = ref.indexOf("/");
  if (slash <= 0) throw bad();
  const host = ref.slice(0, slash);
  const rest = ref.slice(slash + 1);
  const colon = rest.lastIndexOf(":");
  if (colon <= 0) throw bad();
  const repository = rest.slice(0, colon);
  const tag = rest.slice(colon + 1);
  if (!hostRe.test(host) || !repoRe.test(repository) || !tagRe.test(tag)) throw bad();
  return { host, repository, tag };
}

export function formatImageReference(ref: ImageReference): string {
  return `${ref.host}/${ref.repository}:${ref.tag}`;
}

export interface BlobDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface CheckpointImage {
  layer: BlobDescriptor;
  config: { descriptor: BlobDescriptor; bytes: Buffer };
  manifest: { descriptor: BlobDescriptor; bytes: Buffer };
}

function goArch(): string {
  const map: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "arm",
    ppc64: "ppc64le",
    s390x: "s390x",
  };
  return map[process.arch] ?? process.arch;
}

function blob(mediaType: string, value: unknown, annotations?: Record<string, string>) {
  const bytes = Buffer.from(JSON.stringify(value));
  const descriptor: BlobDescriptor = {
    mediaType,
    digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
    size: bytes.length,
  };
  if (annotations) descriptor.annotations = annotations;
  return { descriptor, bytes };
}

/**
 * Describes the checkpoint image around an archive whose sha256 and size are known. The config
 * and manifest are deterministic: the same archive gives the same image.
 */
export function describeCheckpointImage(
  archive: { digest: string; size: number },
  containerName: string,
  /** The layer as pushed encrypted (encryption.ts): the manifest names the ciphertext blob. */
  encrypted?: { mediaType: string; digest: string; size: number; annotations: Record<string, string> },
  /** Migration and workload UIDs, as annotations (and config labels): the image says whose it is. */
  origin?: CheckpointOrigin,
): CheckpointImage {
  assertDigest(archive.digest, "layer digest");
  assertContainerName(containerName);
  const layer: BlobDescriptor = encrypted
    ? {
        mediaType: encrypted.mediaType,
        digest: assertDigest(encrypted.digest, "encrypted layer digest"),
        size: encrypted.size,
        annotations: encrypted.annotations,
      }
    : { mediaType: MEDIA_TYPE_LAYER, digest: archive.digest, size: archive.size };
  const config = blob(MEDIA_TYPE_CONFIG, {
    architecture: goArch(),
    os: "linux",
    config: { Labels: { [CHECKPOINT_NAME_ANNOTATION]: containerName, ...originAnnotations(origin) } },
    rootfs: { type: "layers", diff_ids: [archive.digest] },
    history: [{ created_by: "ms2m: CRI-O checkpoint archive", comment: containerName }],
  });
  const manifest = blob(MEDIA_TYPE_MANIFEST, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: config.descriptor,
    layers: [layer],
    annotations: { [CHECKPOINT_NAME_ANNOTATION]: containerName, ...originAnnotations(origin) },
  });
  return { layer, config, manifest };
}

export function blobPath(layoutDir: string, digest: string): string {
  return join(layoutDir, "blobs", "sha256", assertDigest(digest).slice("sha256:".length));
}

/** Creates the empty skeleton of an OCI layout directory (mode 0700). */
export async function initLayout(layoutDir: string): Promise<string> {
  const blobs = join(layoutDir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true, mode: 0o700 });
  return blobs;
}

/**
 * Completes an OCI layout whose layer blob is already at `blobPath(dir, layer.digest)`: writes
 * config, manifest, index.json (annotated) and oci-layout. Files are 0600.
 */
export async function writeLayout(
  layoutDir: string,
  image: CheckpointImage,
  tag: string,
  containerName: string,
  origin?: CheckpointOrigin,
) {
  await initLayout(layoutDir);
  const owned = originAnnotations(origin);
  const opts = { mode: 0o600 } as const;
  await writeFile(blobPath(layoutDir, image.config.descriptor.digest), image.config.bytes, opts);
  await writeFile(blobPath(layoutDir, image.manifest.descriptor.digest), image.manifest.bytes, opts);
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_INDEX,
    manifests: [
      {
        ...image.manifest.descriptor,
        annotations: { [REF_NAME_ANNOTATION]: tag, [CHECKPOINT_NAME_ANNOTATION]: containerName, ...owned },
      },
    ],
    annotations: { [CHECKPOINT_NAME_ANNOTATION]: containerName, ...owned },
  };
  await writeFile(join(layoutDir, "index.json.tmp"), JSON.stringify(index), opts);
  await rename(join(layoutDir, "index.json.tmp"), join(layoutDir, "index.json"));
  await writeFile(join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }), opts);
}
