// Fetches the four official Fashion-MNIST files and checks each against pinned digests. This is the
// only networked code in data/ (CONVENTIONS: network only in explicit download commands).
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '../io/atomic.js';

/** The mirror torchvision's FashionMNIST downloads from. */
export const OFFICIAL_FASHION_MNIST_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/';

export interface Digest { md5: string; sha256: string; bytes: number }
export interface FilePin {
  /** File name without .gz; fetched as `${baseUrl}${name}.gz`, stored as `${dir}/${name}.gz`. */
  name: string;
  /** The .gz exactly as the mirror serves it. */
  gz: Digest;
  /** The IDX bytes inside, so a recompressed copy (Debian's) is recognised as the same data. */
  raw?: Digest;
}

// gz.md5: torchvision's FashionMNIST.resources. gz.sha256: torchvision's prototype datasets
// (_CHECKSUMS). raw.md5: torchvision's FashionMNIST.raw_data. Checked against the Debian
// package dataset-fashion-mnist 0.0~git20200523.55506a9-1: its .gz files hold the official deflate
// streams with the gzip header's file name and mtime dropped (so their own MD5s differ); putting back
// FNAME and mtime (train 2017-08-31T10:50:06Z, t10k 10:50:27Z) reproduces every gz MD5 and SHA-256
// below, and the gunzipped bytes give every raw digest. test/download.test.ts repeats that check.
export const FASHION_MNIST_PINS: readonly FilePin[] = Object.freeze([
  {
    name: 'train-images-idx3-ubyte',
    gz: { md5: '8d4fb7e6c68d591d4c3dfef9ec88bf0d', sha256: '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84', bytes: 26421880 },
    raw: { md5: 'f4a8712d7a061bf5bd6d2ca38dc4d50a', sha256: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888', bytes: 47040016 },
  },
  {
    name: 'train-labels-idx1-ubyte',
    gz: { md5: '25c81989df183df01b3e8a0aad5dffbe', sha256: 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845', bytes: 29515 },
    raw: { md5: '9018921c3c673c538a1fc5bad174d6f9', sha256: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9', bytes: 60008 },
  },
  {
    name: 't10k-images-idx3-ubyte',
    gz: { md5: 'bef4ecab320f06d8554ea6380940ec79', sha256: '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073', bytes: 4422102 },
    raw: { md5: '8181f5470baa50b63fa0f6fddb340f0a', sha256: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b', bytes: 7840016 },
  },
  {
    name: 't10k-labels-idx1-ubyte',
    gz: { md5: 'bb300cfdad3c16e7a12a480ee83cd310', sha256: '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5', bytes: 5148 },
    raw: { md5: '15d484375f8d13e6eb1aabb0c3f46965', sha256: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34', bytes: 10008 },
  },
]);

export interface DownloadProgress {
  file: string;
  state: 'present' | 'downloading' | 'done';
  received: number;
  total: number | undefined;
}
export interface DownloadOptions {
  dir: string;
  baseUrl?: string;
  fetchImpl?: typeof fetch;
  onProgress?: (p: DownloadProgress) => void;
  /** Per file, covering the request and the whole body. */
  timeoutMs?: number;
  /** Fetch even when a good copy is present (it is replaced only by a verified download). */
  force?: boolean;
  /** Injectable for tests; defaults to the official pins. */
  pins?: readonly FilePin[];
}
export interface DownloadResult {
  dir: string;
  files: { name: string; path: string; status: 'downloaded' | 'present' }[];
}

export class DownloadError extends Error {
  override name = 'DownloadError';
  constructor(readonly file: string, readonly url: string, message: string) {
    super(message);
  }
}

export function digestOf(bytes: Uint8Array): Digest {
  return {
    md5: createHash('md5').update(bytes).digest('hex'),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    bytes: bytes.length,
  };
}
// Both digests must agree: MD5 alone is what other toolkits pin, but it is forgeable.
const same = (a: Digest, b: Digest): boolean => a.md5 === b.md5 && a.sha256 === b.sha256 && a.bytes === b.bytes;
const show = (d: Digest): string => `MD5 ${d.md5} SHA-256 ${d.sha256} (${d.bytes} bytes)`;

/** Whether bytes are the pinned file: the served .gz, or any gzip (or raw IDX) of the pinned content. */
export function matchesPin(bytes: Uint8Array, pin: FilePin, stored: 'gz' | 'raw' = 'gz'): boolean {
  if (stored === 'raw') return pin.raw !== undefined && same(digestOf(bytes), pin.raw);
  if (same(digestOf(bytes), pin.gz)) return true;
  if (pin.raw === undefined || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return false;
  try {
    return same(digestOf(gunzipSync(bytes, { maxOutputLength: pin.raw.bytes + 1 })), pin.raw);
  } catch {
    return false; // corrupt or oversized gzip: not the pinned file
  }
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

async function fetchBytes(
  url: string, file: string, limit: number, timeoutMs: number, fetchImpl: typeof fetch,
  progress: (received: number, total: number | undefined) => void, untouched: string,
): Promise<Uint8Array> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const res = await fetchImpl(url, { redirect: 'follow', signal: ctl.signal });
    if (!res.ok || res.body === null) {
      await res.body?.cancel().catch(() => undefined); // free the connection; the body is not needed
      throw new DownloadError(file, url,
        `${file}: HTTP ${res.status} ${res.statusText} from ${url}; expected 200 with the file. ${untouched} ` +
        `Hint: check the base URL (official: ${OFFICIAL_FASHION_MNIST_URL}) or use \`apt install dataset-fashion-mnist\``);
    }
    const header = Number(res.headers.get('content-length'));
    const total = Number.isFinite(header) && header > 0 ? header : undefined;
    const chunks: Uint8Array[] = [];
    let received = 0;
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      // The pinned size bounds memory: a wrong or hostile server cannot make us buffer more.
      if (received > limit) {
        ctl.abort();
        throw new DownloadError(file, url,
          `${file}: ${url} sent more than the expected ${limit} bytes; refused. ${untouched}`);
      }
      chunks.push(chunk);
      progress(received, total);
    }
    return Buffer.concat(chunks);
  } catch (e) {
    if (e instanceof DownloadError) throw e;
    if (ctl.signal.aborted) {
      throw new DownloadError(file, url,
        `${file}: timed out after ${timeoutMs / 1000} s fetching ${url}. ${untouched} Hint: retry, or raise the timeout`);
    }
    const cause = (e as Error & { cause?: Error }).cause?.message ?? (e as Error).message;
    throw new DownloadError(file, url, `${file}: could not fetch ${url} (${cause}). ${untouched}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Downloads the four official files into dir, verified; files already good are kept as they are. */
export async function downloadFashionMnist(opts: DownloadOptions): Promise<DownloadResult> {
  const dir = resolve(opts.dir);
  const base = (opts.baseUrl ?? OFFICIAL_FASHION_MNIST_URL).replace(/\/*$/, '/');
  const fetchImpl = opts.fetchImpl ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const pins = opts.pins ?? FASHION_MNIST_PINS;
  await mkdir(dir, { recursive: true });
  const result: DownloadResult = { dir, files: [] };

  for (const pin of pins) {
    const file = `${pin.name}.gz`;
    const path = join(dir, file);
    const url = base + file;
    const existing = await readIfExists(path);
    if (!opts.force) {
      const rawPath = join(dir, pin.name);
      const raw = existing === undefined ? await readIfExists(rawPath) : undefined;
      const good = existing !== undefined ? matchesPin(existing, pin) : raw !== undefined && matchesPin(raw, pin, 'raw');
      if (good) {
        const at = existing !== undefined ? path : rawPath;
        opts.onProgress?.({ file, state: 'present', received: 0, total: undefined });
        result.files.push({ name: pin.name, path: at, status: 'present' });
        continue;
      }
    }
    const untouched = existing !== undefined ? `The existing ${path} was left untouched.` : 'Nothing was written.';
    opts.onProgress?.({ file, state: 'downloading', received: 0, total: pin.gz.bytes });
    const bytes = await fetchBytes(url, file, pin.gz.bytes, timeoutMs, fetchImpl,
      (received, total) => opts.onProgress?.({ file, state: 'downloading', received, total: total ?? pin.gz.bytes }),
      untouched);
    const found = digestOf(bytes);
    if (!same(found, pin.gz)) {
      throw new DownloadError(file, url,
        `${file}: checksum mismatch for ${url}; expected ${show(pin.gz)}, found ${show(found)}. ${untouched} ` +
        `Hint: retry; if it persists the mirror is serving other bytes, so try another base URL or \`apt install dataset-fashion-mnist\``);
    }
    // Temp sibling + fsync + rename: a crash leaves the old file or the verified new one.
    writeFileAtomic(path, bytes);
    opts.onProgress?.({ file, state: 'done', received: bytes.length, total: bytes.length });
    result.files.push({ name: pin.name, path, status: 'downloaded' });
  }
  return result;
}
