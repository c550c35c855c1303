import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanStaleTempFiles, removeDirAtomic, writeDirAtomic, writeFileAtomic } from '../src/io/atomic.js';

const root = mkdtempSync(join(tmpdir(), 'ddpm-atomic-'));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
const freshDir = (): string => {
  const d = join(root, `case-${n++}`);
  mkdirSync(d);
  return d;
};
const temps = (dir: string): string[] => readdirSync(dir).filter((name) => name.includes('.tmp-'));

// A pid that certainly belonged to a process that has exited.
const deadPid = (): number => {
  const r = spawnSync(process.execPath, ['-e', '']);
  assert.ok(r.pid);
  return r.pid;
};

describe('writeFileAtomic', () => {
  it('creates and replaces the target, leaving no temp files', () => {
    const dir = freshDir();
    const p = join(dir, 'a.json');
    writeFileAtomic(p, '{"v":1}');
    assert.equal(readFileSync(p, 'utf8'), '{"v":1}');
    writeFileAtomic(p, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...readFileSync(p)], [1, 2, 3]);
    writeFileAtomic(p, new Uint8Array(0));
    assert.equal(readFileSync(p).length, 0);
    assert.deepEqual(readdirSync(dir), ['a.json']);
  });

  it('with overwrite: false, creates a new file but leaves an existing one (EEXIST) and no temp file', () => {
    const dir = freshDir();
    const p = join(dir, 'model.onnx');
    writeFileAtomic(p, 'first', { overwrite: false });
    assert.equal(readFileSync(p, 'utf8'), 'first');
    assert.throws(() => writeFileAtomic(p, 'second', { overwrite: false }), (e: Error & { code?: string }) => {
      assert.match(e.message, /writeFileAtomic: could not write ".*model\.onnx" \(left unchanged\): EEXIST/);
      assert.equal(e.code, 'EEXIST');
      return true;
    });
    assert.equal(readFileSync(p, 'utf8'), 'first');
    assert.deepEqual(readdirSync(dir), ['model.onnx']);
  });

  it('a data argument that throws mid-write leaves the previous file intact', () => {
    const dir = freshDir();
    const p = join(dir, 'a.bin');
    writeFileAtomic(p, 'old');
    class Exploding extends Uint8Array {
      override get byteLength(): number {
        throw new Error('boom');
      }
    }
    assert.throws(() => writeFileAtomic(p, new Exploding(4)), /writeFileAtomic: could not write ".*a\.bin" \(left unchanged\): boom/);
    assert.throws(() => writeFileAtomic(p, {} as Uint8Array), /must be a Uint8Array or a string/);
    assert.equal(readFileSync(p, 'utf8'), 'old');
    assert.deepEqual(temps(dir), []);
  });

  it('a failing rename (target is a folder) removes the temp file', () => {
    const dir = freshDir();
    const p = join(dir, 'taken');
    mkdirSync(p);
    writeFileSync(join(p, 'inside'), 'x');
    assert.throws(() => writeFileAtomic(p, 'data'), (err: unknown) =>
      err instanceof Error && /could not write/.test(err.message) && typeof (err as { code?: unknown }).code === 'string');
    assert.equal(readFileSync(join(p, 'inside'), 'utf8'), 'x');
    assert.deepEqual(temps(dir), []);
  });

  it('a missing or unwritable folder fails without side effects', () => {
    const dir = freshDir();
    assert.throws(() => writeFileAtomic(join(dir, 'no', 'such', 'f'), 'x'), (err: unknown) =>
      (err as { code?: string }).code === 'ENOENT');
    // Permission bits do not stop root, so only check them as a normal user.
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked');
      mkdirSync(locked, { mode: 0o500 });
      assert.throws(() => writeFileAtomic(join(locked, 'f'), 'x'), /could not write/);
      assert.deepEqual(readdirSync(locked), []);
    }
  });
});

describe('writeDirAtomic', () => {
  it('builds the folder under a temp name and renames it into place', () => {
    const parent = freshDir();
    const final = join(parent, 'ckpt-000100');
    let seen = '';
    writeDirAtomic(final, (tmp) => {
      seen = tmp;
      assert.match(tmp, /\/\.ckpt-000100\.tmp-\d+-[0-9a-f]+$/);
      assert.equal(existsSync(final), false);
      writeFileSync(join(tmp, 'model.safetensors'), 'weights');
      mkdirSync(join(tmp, 'samples'));
      writeFileSync(join(tmp, 'samples', 'grid.png'), 'png');
    });
    assert.equal(existsSync(seen), false);
    assert.equal(readFileSync(join(final, 'model.safetensors'), 'utf8'), 'weights');
    assert.equal(readFileSync(join(final, 'samples', 'grid.png'), 'utf8'), 'png');
    assert.deepEqual(readdirSync(parent), ['ckpt-000100']);
  });

  it('creates missing parents', () => {
    const final = join(freshDir(), 'runs', 'x', 'ckpt');
    writeDirAtomic(final, (tmp) => writeFileSync(join(tmp, 'f'), '1'));
    assert.equal(readFileSync(join(final, 'f'), 'utf8'), '1');
  });

  it('refuses an existing folder and leaves it alone', () => {
    const parent = freshDir();
    const final = join(parent, 'ckpt');
    mkdirSync(final);
    writeFileSync(join(final, 'old'), 'keep');
    let called = false;
    assert.throws(() => writeDirAtomic(final, () => { called = true; }), /writeDirAtomic: ".*ckpt" already exists; refusing to replace it/);
    assert.equal(called, false);
    assert.deepEqual(readdirSync(final), ['old']);
    assert.deepEqual(temps(parent), []);
  });

  it('refuses a folder that appears while fill runs', () => {
    const parent = freshDir();
    const final = join(parent, 'ckpt');
    assert.throws(() => writeDirAtomic(final, () => mkdirSync(final)), /already exists/);
    assert.deepEqual(readdirSync(parent), ['ckpt']);
  });

  it('a throwing fill leaves no temp folder and no target', () => {
    const parent = freshDir();
    const final = join(parent, 'ckpt');
    assert.throws(() => writeDirAtomic(final, (tmp) => {
      writeFileSync(join(tmp, 'half'), 'partial');
      throw new Error('out of disk');
    }), /^Error: out of disk$/);
    assert.deepEqual(readdirSync(parent), []);
  });

  it('an async fill is refused and cleaned up', () => {
    const parent = freshDir();
    assert.throws(() => writeDirAtomic(join(parent, 'ckpt'), (async () => {}) as () => void), /returned a promise/);
    assert.deepEqual(readdirSync(parent), []);
  });
});

describe('cleanStaleTempFiles', () => {
  it('removes temps of dead processes, keeps live ones and ordinary files', () => {
    const dir = freshDir();
    const dead = deadPid();
    const staleFile = `.model.safetensors.tmp-${dead}-0123abcd`;
    const staleDir = `.ckpt-000200.tmp-${dead}-ffee`;
    const mine = `.model.safetensors.tmp-${process.pid}-abcdef`;
    const parentPid = `.x.tmp-${process.ppid}-abc`;
    writeFileSync(join(dir, staleFile), 'half');
    mkdirSync(join(dir, staleDir));
    writeFileSync(join(dir, staleDir, 'f'), 'x');
    writeFileSync(join(dir, mine), 'in progress');
    writeFileSync(join(dir, parentPid), 'in progress');
    writeFileSync(join(dir, 'model.safetensors'), 'real');
    writeFileSync(join(dir, '.hidden.tmp-notapid-abc'), 'not ours');

    const removed = cleanStaleTempFiles(dir).sort();
    assert.deepEqual(removed, [staleDir, staleFile].sort());
    assert.deepEqual(readdirSync(dir).sort(), [parentPid, '.hidden.tmp-notapid-abc', mine, 'model.safetensors'].sort());
  });

  it('recognises the names writeFileAtomic itself uses', () => {
    const dir = freshDir();
    const p = join(dir, 'a.bin');
    class Exploding extends Uint8Array {
      override get byteLength(): number {
        // Leave a copy of our own temp name behind, under a dead pid, to prove the pattern matches.
        const own = readdirSync(dir).find((name) => name.includes('.tmp-'));
        assert.ok(own);
        writeFileSync(join(dir, own.replace(`-${process.pid}-`, `-${deadPid()}-`)), '');
        throw new Error('boom');
      }
    }
    assert.throws(() => writeFileAtomic(p, new Exploding(1)), /boom/);
    assert.equal(cleanStaleTempFiles(dir).length, 1);
    assert.deepEqual(readdirSync(dir), []);
  });
});

it('removeDirAtomic: the folder is gone, no temp is left, and a missing folder is fine', () => {
  const root = mkdtempSync(join(tmpdir(), 'ddpm-rmdir-'));
  const dir = join(root, 'step-5');
  mkdirSync(dir);
  writeFileSync(join(dir, 'model.safetensors'), 'x');
  removeDirAtomic(dir);
  assert.deepEqual(readdirSync(root), []);
  removeDirAtomic(dir);
  rmSync(root, { recursive: true, force: true });
});
