// Streaming, bounded inspection of a tar stream (a CRI-O checkpoint archive) as it flows.
//
// The inspector only looks at headers: file data is skipped by counting, so the cost is
// O(number of entries) and memory stays flat whatever the archive size. It rejects anything
// that could write outside the layer root or smuggle something a checkpoint never contains:
// absolute paths, `..`, links escaping the root, entries below a symlink, devices/FIFOs,
// duplicate entries, oversized or malformed headers, set-id bits, data after the end marker,
// and truncated streams.
import { Ms2mError } from "../common/errors.ts";

export interface TarLimits {
  /** Maximum number of entries (files, dirs, links). */
  maxEntries: number;
  /** Maximum length of a path or link target, in bytes. */
  maxPathLength: number;
  /** Maximum size of a PAX extended header or GNU long-name record. */
  maxMetaHeaderBytes: number;
  /** Maximum size of one entry's data. */
  maxEntryBytes: number;
}

export interface TarOptions {
  /**
   * Names must be safe on every platform, not only on Linux (default true): no backslash,
   * control character, invalid UTF-8, Windows-reserved character (`<>:"|?*`) or device name
   * (CON, NUL, COM1, …), no component ending in a dot or a space or longer than 255 bytes, and no
   * two names that differ only in case or Unicode normalization. A container's own files
   * (rootfs-diff.tar) are Linux names and are only held to the Linux rules.
   */
  portable?: boolean;
  /** An archive with no entry (two end blocks) is accepted (an empty rootfs-diff.tar). */
  allowEmpty?: boolean;
  /**
   * Symlinks may point at absolute targets (default false). Only for a container's own files
   * (rootfs-diff.tar: CRI-O itself writes `etc/mtab -> /proc/mounts`), which resolve inside the
   * container's root; no entry may be written below any symlink, so unpacking never follows one.
   */
  allowAbsoluteSymlinks?: boolean;
}

/** Receives the data bytes of one entry (without the block padding). */
export interface EntrySink {
  write(chunk: Buffer): void;
  end(): void;
}

export const defaultTarLimits: TarLimits = {
  maxEntries: 100_000,
  maxPathLength: 4096,
  maxMetaHeaderBytes: 64 * 1024,
  maxEntryBytes: 64 * 1024 ** 3,
};

export interface TarEntrySummary {
  path: string;
  type: "file" | "dir" | "symlink" | "hardlink";
  size: number;
  /** Link target as written (symlink, hard link). */
  linkname?: string;
}

const BLOCK = 512;

type State = "header" | "data" | "meta" | "end1" | "ended";

function unsafe(message: string): Ms2mError {
  return new Ms2mError("Invalid", `unsafe checkpoint archive: ${message}`, { retriable: false });
}

function malformed(message: string): Ms2mError {
  return new Ms2mError("BadRequest", `malformed checkpoint archive: ${message}`, { retriable: false });
}

function cstring(buf: Buffer, start: number, end: number): string {
  let stop = start;
  while (stop < end && buf[stop] !== 0) stop++;
  return buf.toString("utf8", start, stop);
}

function parseNumber(buf: Buffer, start: number, end: number, field: string): number {
  const first = buf[start] ?? 0;
  if (first & 0x80) {
    // GNU base-256: big-endian, positive only.
    if (first !== 0x80) throw malformed(`negative or huge ${field}`);
    let value = 0;
    for (let i = start + 1; i < end; i++) {
      value = value * 256 + (buf[i] ?? 0);
      if (value > Number.MAX_SAFE_INTEGER) throw malformed(`${field} too large`);
    }
    return value;
  }
  const text = cstring(buf, start, end).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw malformed(`invalid ${field} field`);
  return parseInt(text, 8);
}

/** Normalizes a tar path; returns null for the root entry ("./"). Throws on unsafe paths. */
export function normalizeEntryPath(raw: string, maxLength: number): string | null {
  if (raw.length === 0) throw unsafe("empty entry name");
  if (Buffer.byteLength(raw) > maxLength) throw unsafe("entry name too long");
  if (raw.includes("\0")) throw unsafe("NUL byte in entry name");
  if (raw.startsWith("/")) throw unsafe(`absolute path ${JSON.stringify(raw.slice(0, 200))}`);
  const parts: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") throw unsafe(`path with '..': ${JSON.stringify(raw.slice(0, 200))}`);
    parts.push(part);
  }
  return parts.length === 0 ? null : parts.join("/");
}

const WINDOWS_DEVICE =
  /^(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3]|conin\$|conout\$)(\..*)?$/i;

/**
 * Why a normalized entry path is not a safe name on every platform (Windows and macOS
 * included), or null. Checked per component.
 */
export function portableNameProblem(path: string): string | null {
  if (path.includes("\uFFFD")) return "name is not valid UTF-8";
  if (path.includes("\\")) return "backslash in name";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return "control character in name";
  for (const part of path.split("/")) {
    if (/[<>:"|?*]/.test(part))
      return `character reserved on Windows in ${JSON.stringify(part.slice(0, 64))}`;
    if (part.endsWith(".") || part.endsWith(" "))
      return `name component ending in a dot or a space: ${JSON.stringify(part.slice(0, 64))}`;
    if (WINDOWS_DEVICE.test(part)) return `Windows device name ${JSON.stringify(part.slice(0, 64))}`;
    if (Buffer.byteLength(part) > 255) return "name component longer than 255 bytes";
  }
  return null;
}

/** The key under which two names collide on a case-insensitive, normalizing file system. */
export function foldedName(path: string): string {
  return path.normalize("NFC").toLowerCase().normalize("NFC");
}

function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    if (space < 0) throw malformed("bad PAX record");
    const lenText = data.toString("ascii", pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw malformed("bad PAX record length");
    const len = parseInt(lenText, 10);
    if (len <= space - pos + 1 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw malformed("bad PAX record length");
    }
    const record = data.toString("utf8", space + 1, pos + len - 1);
    const eq = record.indexOf("=");
    if (eq <= 0) throw malformed("bad PAX record");
    const key = record.slice(0, eq);
    if (out.has(key)) throw malformed(`duplicate PAX key ${key}`);
    out.set(key, record.slice(eq + 1));
    pos += len;
  }
  return out;
}

export class TarInspector {
  readonly limits: TarLimits;
  private state: State = "header";
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private remaining = 0; // data bytes left in the current entry (incl. padding)
  private meta: Buffer[] = [];
  private metaSize = 0;
  private metaKind: "x" | "L" | "K" | null = null;
  private pending: { path?: string; linkpath?: string; size?: number } = {};
  private readonly seen = new Map<string, TarEntrySummary["type"]>();
  private readonly symlinks = new Set<string>();
  private readonly folded = new Set<string>();
  private readonly onEntry: ((e: TarEntrySummary) => EntrySink | void) | undefined;
  private readonly options: Required<TarOptions>;
  private sink: EntrySink | undefined;
  /** Data bytes of the current entry not yet passed to its sink. */
  private dataLeft = 0;
  private failed: Ms2mError | null = null;
  entries = 0;

  constructor(
    limits: Partial<TarLimits> = {},
    onEntry?: (e: TarEntrySummary) => EntrySink | void,
    options: TarOptions = {},
  ) {
    this.limits = { ...defaultTarLimits, ...limits };
    this.onEntry = onEntry;
    this.options = {
      portable: options.portable ?? true,
      allowEmpty: options.allowEmpty ?? false,
      allowAbsoluteSymlinks: options.allowAbsoluteSymlinks ?? false,
    };
  }

  /** Feeds the next chunk; throws an Ms2mError on the first problem (and on every call after). */
  write(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    try {
      this.consume(chunk);
    } catch (err) {
      this.failed = err instanceof Ms2mError ? err : malformed(String(err));
      throw this.failed;
    }
  }

  /** Signals the end of the stream; throws if the archive is truncated or empty. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.state !== "ended") {
      this.failed = malformed(
        this.state === "end1" ? "missing second end-of-archive block" : "truncated stream",
      );
      throw this.failed;
    }
    if (this.headerFill !== 0) throw malformed("truncated trailing block");
    if (this.entries === 0 && !this.options.allowEmpty) throw malformed("archive has no entries");
  }

  private consume(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      switch (this.state) {
        case "data": {
          const n = Math.min(this.remaining, chunk.length - off);
          if (this.sink && this.dataLeft > 0) {
            const d = Math.min(n, this.dataLeft);
            this.sink.write(chunk.subarray(off, off + d));
            this.dataLeft -= d;
          }
          this.remaining -= n;
          off += n;
          if (this.remaining === 0) this.endEntry();
          break;
        }
        case "meta": {
          const n = Math.min(this.remaining, chunk.length - off);
          this.meta.push(chunk.subarray(off, off + n));
          this.remaining -= n;
          off += n;
          if (this.remaining === 0) this.finishMeta();
          break;
        }
        case "ended": {
          // Only zero padding may follow the end-of-archive marker.
          for (let i = off; i < chunk.length; i++) {
            if (chunk[i] !== 0) throw unsafe("data after end-of-archive marker");
          }
          this.headerFill = (this.headerFill + chunk.length - off) % BLOCK;
          off = chunk.length;
          break;
        }
        default: {
          const n = Math.min(BLOCK - this.headerFill, chunk.length - off);
          chunk.copy(this.header, this.headerFill, off, off + n);
          this.headerFill += n;
          off += n;
          if (this.headerFill === BLOCK) {
            this.headerFill = 0;
            this.onHeader(this.header);
          }
        }
      }
    }
  }

  private onHeader(h: Buffer): void {
    const zero = h.every((b) => b === 0);
    if (this.state === "end1") {
      if (!zero) throw malformed("single zero block inside archive");
      if (this.metaKind !== null || Object.keys(this.pending).length > 0) {
        throw malformed("extended header without entry");
      }
      this.state = "ended";
      return;
    }
    if (zero) {
      this.state = "end1";
      return;
    }
    // Checksum: sum of the header with the checksum field read as spaces.
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
    const declared = parseNumber(h, 148, 156, "checksum");
    if (declared !== sum) throw malformed("header checksum mismatch");

    const magic = h.toString("latin1", 257, 265);
    const ustar = magic === "ustar\u000000";
    const gnu = magic === "ustar  \u0000";
    if (!ustar && !gnu) throw malformed("not a ustar/gnu tar header");
    const typeflag = String.fromCharCode(h[156] ?? 0);
    const mode = parseNumber(h, 100, 108, "mode");
    let size = parseNumber(h, 124, 136, "size");
    let name = cstring(h, 0, 100);
    if (ustar) {
      const prefix = cstring(h, 345, 500);
      if (prefix) name = `${prefix}/${name}`;
    }
    let linkname = cstring(h, 157, 257);

    if (typeflag === "x" || typeflag === "L" || typeflag === "K") {
      if (size > this.limits.maxMetaHeaderBytes) throw unsafe(`oversized extended header (${size} bytes)`);
      if (this.metaKind !== null) throw malformed("nested extended headers");
      if (
        (typeflag === "x" && (this.pending.path !== undefined || this.pending.size !== undefined)) ||
        (typeflag === "L" && this.pending.path !== undefined) ||
        (typeflag === "K" && this.pending.linkpath !== undefined)
      ) {
        throw malformed("duplicate extended header");
      }
      this.metaKind = typeflag;
      this.meta = [];
      this.metaSize = size;
      this.remaining = Math.ceil(size / BLOCK) * BLOCK;
      if (this.remaining === 0) this.finishMeta();
      else this.state = "meta";
      return;
    }
    if (typeflag === "g") throw unsafe("global PAX header");

    if (this.pending.path !== undefined) name = this.pending.path;
    if (this.pending.linkpath !== undefined) linkname = this.pending.linkpath;
    if (this.pending.size !== undefined) size = this.pending.size;
    this.pending = {};

    let type: TarEntrySummary["type"];
    switch (typeflag) {
      case "0":
      case "\0":
      case "7":
        type = "file";
        break;
      case "5":
        type = "dir";
        break;
      case "2":
        type = "symlink";
        break;
      case "1":
        type = "hardlink";
        break;
      case "3":
      case "4":
        throw unsafe(`device node ${JSON.stringify(name.slice(0, 200))}`);
      case "6":
        throw unsafe(`FIFO ${JSON.stringify(name.slice(0, 200))}`);
      default:
        throw unsafe(`unsupported entry type ${JSON.stringify(typeflag)}`);
    }
    if (type !== "dir" && mode & 0o7000) throw unsafe("set-id or sticky bit on a non-directory entry");
    if (type !== "file" && size !== 0) throw malformed("non-file entry with data");
    if (size > this.limits.maxEntryBytes)
      throw unsafe(`entry larger than ${this.limits.maxEntryBytes} bytes`);

    const path = normalizeEntryPath(name, this.limits.maxPathLength);
    if (++this.entries > this.limits.maxEntries) throw unsafe(`more than ${this.limits.maxEntries} entries`);
    this.sink = undefined;
    if (path === null) {
      if (type !== "dir") throw unsafe("root entry that is not a directory");
    } else {
      this.sink = this.checkEntry(path, type, linkname, size) ?? undefined;
    }

    this.dataLeft = size;
    this.remaining = Math.ceil(size / BLOCK) * BLOCK;
    if (this.remaining === 0) this.endEntry();
    else this.state = "data";
  }

  private endEntry(): void {
    this.state = "header";
    const sink = this.sink;
    this.sink = undefined;
    sink?.end();
  }

  private checkEntry(
    path: string,
    type: TarEntrySummary["type"],
    linkname: string,
    size: number,
  ): EntrySink | void {
    if (this.seen.has(path)) throw unsafe(`duplicate entry ${JSON.stringify(path.slice(0, 200))}`);
    if (this.options.portable) {
      const problem = portableNameProblem(path);
      if (problem) throw unsafe(`${problem} (${JSON.stringify(path.slice(0, 200))})`);
      const key = foldedName(path);
      if (this.folded.has(key))
        throw unsafe(
          `names differing only in case or Unicode normalization: ${JSON.stringify(path.slice(0, 200))}`,
        );
      this.folded.add(key);
    }
    // No entry may live below a symlink (that would write through it).
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (this.symlinks.has(parent)) throw unsafe(`entry below symlink ${JSON.stringify(parent)}`);
      const parentType = this.seen.get(parent);
      if (parentType !== undefined && parentType !== "dir") throw unsafe(`entry below non-directory`);
    }
    if (type === "symlink") {
      if (linkname === "" || linkname.includes("\0")) throw unsafe("empty symlink target");
      if (Buffer.byteLength(linkname) > this.limits.maxPathLength) throw unsafe("symlink target too long");
      const absolute = linkname.startsWith("/");
      if (absolute && !this.options.allowAbsoluteSymlinks)
        throw unsafe(`absolute symlink target in ${JSON.stringify(path)}`);
      // Resolve relative to the link's directory (an absolute target from the root); it may
      // never climb above the root.
      const stack = absolute ? [] : parts.slice(0, -1);
      for (const seg of linkname.split("/")) {
        if (seg === "" || seg === ".") continue;
        if (seg === "..") {
          if (stack.length === 0) throw unsafe(`symlink escaping the root: ${JSON.stringify(path)}`);
          stack.pop();
        } else stack.push(seg);
      }
      this.symlinks.add(path);
    } else if (type === "hardlink") {
      const target = normalizeEntryPath(linkname, this.limits.maxPathLength);
      if (target === null || this.seen.get(target) !== "file") {
        throw unsafe(`hard link to a missing or non-file target in ${JSON.stringify(path)}`);
      }
    }
    this.seen.set(path, type);
    return this.onEntry?.(
      type === "symlink" || type === "hardlink" ? { path, type, size, linkname } : { path, type, size },
    );
  }

  private finishMeta(): void {
    const data = Buffer.concat(this.meta).subarray(0, this.metaSize);
    const kind = this.metaKind;
    this.meta = [];
    this.metaKind = null;
    this.state = "header";
    if (kind === "x") {
      const pax = parsePax(data);
      for (const key of pax.keys()) {
        if (
          !["path", "linkpath", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"].includes(
            key,
          )
        ) {
          // Only user.* xattrs: security.capability & co. could grant privileges when unpacked.
          if (!key.startsWith("SCHILY.xattr.user.")) {
            throw unsafe(`unsupported PAX key ${JSON.stringify(key.slice(0, 64))}`);
          }
        }
      }
      const path = pax.get("path");
      const linkpath = pax.get("linkpath");
      const size = pax.get("size");
      if (path !== undefined) this.pending.path = path;
      if (linkpath !== undefined) this.pending.linkpath = linkpath;
      if (size !== undefined) {
        if (!/^[0-9]{1,16}$/.test(size)) throw malformed("bad PAX size");
        this.pending.size = Number(size);
      }
    } else {
      const text = cstring(data, 0, data.length);
      if (kind === "L") this.pending.path = text;
      else this.pending.linkpath = text;
    }
  }
}
