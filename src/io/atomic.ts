// Crash-safe writes: readers see either the old content or the complete new one, never a torn file.
// Recipe: write a temp sibling, fsync it, rename over the target (atomic within one filesystem),
// fsync the folder so the rename itself survives a power loss.
import { randomBytes } from 'node:crypto';
import {
  closeSync, fsyncSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** `.<basename>.tmp-<pid>-<hex>`; the pid lets cleanStaleTempFiles tell abandoned temps from live ones. */
function tempName(base: string): string {
  // Keep the name under the usual 255-byte limit even for long basenames.
  return `.${base.slice(0, 200)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

const TEMP_RE = /^\..*\.tmp-(\d+)-[0-9a-f]+$/s;

// Cleanup on a failure path must not mask the error that got us there.
function removeQuietly(p: string): void {
  try { rmSync(p, { recursive: true, force: true }); } catch { /* keep the original error */ }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Carries the fs error code (ENOSPC, EACCES...) so callers can still branch on it.
function wrapError(message: string, cause: unknown): Error {
  const out = new Error(message, { cause });
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === 'string') Object.assign(out, { code });
  return out;
}

/** fsync a folder so renames/creations inside it are durable. Windows cannot open folders for fsync. */
function fsyncDir(dir: string): void {
  if (process.platform === 'win32') return;
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `path` with `data` atomically. On any failure the temp file is removed, `path` keeps
 * its previous content, and the error (fs `code` preserved, original as `cause`) is rethrown.
 * The new file gets default permissions (0o666 minus umask), not those of the file it replaces.
 * With `overwrite: false` an existing `path` is left alone and the write fails with EEXIST: the
 * complete temp file is hard-linked to the name, which, unlike rename, never replaces a file
 * that appeared meanwhile.
 */
export function writeFileAtomic(path: string, data: Uint8Array | string, o: { overwrite?: boolean } = {}): void {
  if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
    throw new TypeError(`writeFileAtomic: data for "${path}" must be a Uint8Array or a string, found ${typeof data}`);
  }
  const target = resolve(path);
  const dir = dirname(target);
  const tmp = join(dir, tempName(basename(target)));
  let fd: number | undefined;
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    fd = openSync(tmp, 'wx'); // 'x': never write through a file someone else created under this name
    for (let done = 0; done < bytes.byteLength;) {
      done += writeSync(fd, bytes, done, bytes.byteLength - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (o.overwrite === false) {
      linkSync(tmp, target);
      rmSync(tmp);
    } else {
      renameSync(tmp, target);
    }
  } catch (err) {
    if (fd !== undefined) {
      try { closeSync(fd); } catch { /* already failing; the original error matters more */ }
    }
    removeQuietly(tmp);
    throw wrapError(`writeFileAtomic: could not write "${path}" (left unchanged): ${describeError(err)}`, err);
  }
  fsyncDir(dir);
}

/** fsync every regular file and folder below (and including) `dir`, without following links. */
function fsyncTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      fsyncTree(p);
    } else if (entry.isFile()) {
      const fd = openSync(p, 'r');
      try { fsyncSync(fd); } finally { closeSync(fd); }
    }
  }
  fsyncDir(dir);
}

function exists(p: string): boolean {
  // lstat: a dangling symlink at the target still counts as "taken".
  return lstatSync(p, { throwIfNoEntry: false }) !== undefined;
}

/**
 * Creates `finalDir` complete or not at all (used for checkpoint folders): `fill` writes into a
 * temp sibling folder, everything is fsynced, then the folder is renamed into place and the parent
 * fsynced. Refuses if `finalDir` already exists. Missing parents are created (those are not
 * fsynced). If `fill` throws, the temp folder is removed and the error rethrown as is.
 * `fill` must be synchronous: a returned promise is refused, since the rename would race it.
 * Note: the existence check and rename are not one atomic step; a folder created in between is
 * refused by rename only when it is non-empty (POSIX rename replaces an empty folder).
 */
export function writeDirAtomic(finalDir: string, fill: (tmpDir: string) => void): void {
  const target = resolve(finalDir);
  const refuse = (): Error =>
    new Error(`writeDirAtomic: "${finalDir}" already exists; refusing to replace it (pick a new name or remove it first)`);
  if (exists(target)) throw refuse();
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  const tmp = join(parent, tempName(basename(target)));
  mkdirSync(tmp);
  try {
    const result: unknown = fill(tmp);
    if (typeof (result as { then?: unknown } | null)?.then === 'function') {
      throw new Error(`writeDirAtomic: fill for "${finalDir}" returned a promise; it must write synchronously`);
    }
    fsyncTree(tmp);
    if (exists(target)) throw refuse();
    renameSync(tmp, target);
  } catch (err) {
    removeQuietly(tmp);
    throw err;
  }
  fsyncDir(parent);
}

/**
 * Removes a folder so that it is whole or gone, never half-deleted under its own name: it is first
 * renamed to a temp name (one atomic step, then the parent is fsynced), and only then deleted. A
 * process killed during the delete leaves a temp folder that cleanStaleTempFiles removes later.
 */
export function removeDirAtomic(dir: string): void {
  const target = resolve(dir);
  if (!exists(target)) return;
  const parent = dirname(target);
  const tmp = join(parent, tempName(basename(target)));
  renameSync(target, tmp);
  fsyncDir(parent);
  rmSync(tmp, { recursive: true, force: true });
}

function isProcessAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  // pid 0 / negative would signal process groups; such a pid was never ours, so the temp is stale.
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Removes temp files and folders (`.<name>.tmp-<pid>-<hex>`) left in `dir` by writeFileAtomic /
 * writeDirAtomic whose writer process is gone; returns the removed names. Temps of living
 * processes (including this one) are kept. Pids are per machine and per pid namespace: do not
 * run this on a folder shared with other hosts or containers that write concurrently.
 */
export function cleanStaleTempFiles(dir: string): string[] {
  const removed: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const m = TEMP_RE.exec(entry.name);
    if (!m || isProcessAlive(Number(m[1]))) continue;
    rmSync(join(dir, entry.name), { recursive: true, force: true });
    removed.push(entry.name);
  }
  return removed;
}
