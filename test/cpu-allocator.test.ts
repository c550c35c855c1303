// The caching CPU allocator (native/cpu-allocator.cc) and inference mode: the same numbers as c10's
// allocator and as no-grad sampling, memory given back on release and past the cap, no growth over a
// long loop, safe switching with tensors alive. The allocator is process-wide; each test sets the one
// it needs through configureRuntime, as the `ddpm` command does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  type Tensor, type CpuAllocator, configureRuntime, allocatorStats, releaseCachedMemory, inferenceMode, isInferenceMode, noGrad,
  manualSeed, randn, zeros, full, tidy, keep, liveTensors, Generator, minorFaults, residentBytes, peakResidentBytes,
} from '../src/tensor/index.js';
import { mseLoss } from '../src/tensor/functional.js';
import { Adam, Conv2d, ReLU, Sequential } from '../src/nn/index.js';
import { DdpmUNet } from '../src/models/index.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import { sample, resolveSampling, reverseProcess, runSync, tensorOps, callModel, oneHot } from '../src/samplers/index.js';

const MiB = 2 ** 20;
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const use = (allocator: CpuAllocator, allocatorCapBytes = 512 * MiB): void => { configureRuntime({ allocator, allocatorCapBytes }); };

// A small class-conditional `ddpm` U-Net: GroupNorm, SiLU, attention, FiLM, as the preset has them.
function smallUNet(): DdpmUNet {
  manualSeed(7);
  return new DdpmUNet({ imageChannels: 1, imageSize: 8, T: 50, numClasses: 3, dim: 8, dimMults: [1, 2], resnetBlocks: 1, groups: 4, attnHeads: 2, attnDimHead: 8 });
}

const bytes = (t: Tensor): Buffer => Buffer.from(t.dataSync().buffer);

/** A forward pass and one Adam step of the small U-Net; the output and every weight after the step, as bytes. */
function forwardAndStep(): { out: Buffer; weights: Buffer[]; loss: number } {
  const model = smallUNet();
  const opt = new Adam(model.namedParameters(), { lr: 1e-3 });
  const g = new Generator(3);
  const r = tidy(() => {
    const x = randn([6, 1, 8, 8], { generator: g }); // (B, C, H, W)
    const t = full([6], 17, { dtype: 'int64' });
    const c = oneHot([0, 1, 2, 0, 1, -1], 3);
    const out = noGrad(() => model.forward(x, t, c));
    opt.zeroGrad();
    const loss = mseLoss(model.forward(x, t, c), x);
    loss.backward();
    opt.step();
    return { out: bytes(out), loss: loss.item() };
  });
  const weights = model.parameters().map(bytes);
  model.dispose();
  return { ...r, weights };
}

test('a U-Net forward pass and a training step are bit-identical with and without the caching allocator', () => {
  use('default');
  const plain = forwardAndStep();
  use('caching');
  forwardAndStep(); // the first run fills the cache: the second is served from reused blocks
  const cachedFirst = allocatorStats();
  const cached = forwardAndStep();
  const s = allocatorStats();
  assert.ok(s.hits - cachedFirst.hits > 100, `the second run reused cached blocks (${s.hits - cachedFirst.hits} hits)`);
  assert.ok(cached.out.equals(plain.out), 'forward output differs');
  assert.equal(cached.loss, plain.loss);
  assert.equal(cached.weights.length, plain.weights.length);
  cached.weights.forEach((w, i) => assert.ok(w.equals(plain.weights[i]!), `parameter ${i} differs after the step`));
  use('default');
});

test('freed blocks are kept for reuse without page faults, and releaseCachedMemory gives them and their pages back', () => {
  use('caching');
  releaseCachedMemory();
  const size = 64 * MiB;
  const touch = (): void => tidy(() => { zeros([size / 4]); }); // zero-fills, so writes, every page of a 64 MiB block
  const inUse = allocatorStats().inUseBytes; // earlier tests' tensors that V8 has not collected yet
  touch();
  const before = allocatorStats();
  assert.ok(before.cachedBytes >= size, `a freed 64 MiB block is cached (${before.cachedBytes} bytes)`);
  assert.equal(before.inUseBytes, inUse);
  const faults0 = minorFaults();
  const rssCached = residentBytes();
  touch();
  const faults = minorFaults()! - faults0!;
  // 16,384 pages of 4 KiB: served from the cache, none of them is faulted in again.
  assert.ok(faults < 300, `reusing a cached 64 MiB block took ${faults} minor faults`);
  assert.ok(allocatorStats().hits > before.hits);
  const released = releaseCachedMemory();
  assert.ok(released >= size, `released ${released} bytes`);
  const after = allocatorStats();
  assert.equal(after.cachedBytes, 0);
  assert.equal(after.inUseBytes, inUse);
  const rssReleased = residentBytes()!;
  assert.ok(rssCached! - rssReleased > 48 * MiB, `RSS fell by ${(rssCached! - rssReleased) / MiB} MiB on release`);
  assert.ok(peakResidentBytes()! > rssReleased - MiB, 'VmHWM is the peak of VmRSS (to the kernel\'s per-thread batching)');
  use('default');
});

test('a 1,000-step training loop neither grows the cache nor goes back to the system after warm-up', () => {
  use('caching');
  releaseCachedMemory();
  manualSeed(0);
  const net = new Sequential(new Conv2d(1, 8, 3, { padding: 1 }), new ReLU(), new Conv2d(8, 1, 3, { padding: 1 }));
  const opt = new Adam(net.namedParameters(), { lr: 1e-3 });
  const x = keep(randn([4, 1, 8, 8])); // (B, C, H, W)
  const target = keep(tidy(() => x.mul(0.5).add(0.1)));
  const step = (): number => tidy(() => {
    opt.zeroGrad();
    const loss = mseLoss(net.forward(x), target);
    loss.backward();
    opt.step();
    return loss.item();
  });
  for (let i = 0; i < 50; i++) step();
  gc(); // earlier tests' undisposed handles, so their release does not show up in this loop's counts
  const warm = allocatorStats();
  const live = liveTensors();
  let last = 0;
  for (let i = 0; i < 1000; i++) last = step();
  const end = allocatorStats();
  assert.ok(Number.isFinite(last));
  assert.equal(end.misses, warm.misses, 'a step after warm-up asked the system for memory');
  assert.equal(end.peakReservedBytes, warm.peakReservedBytes, 'the cache and the blocks in use grew');
  // V8 may collect an earlier test's tensors meanwhile, moving bytes from in use to cached; the sum stays.
  assert.equal(end.inUseBytes + end.cachedBytes, warm.inUseBytes + warm.cachedBytes);
  assert.ok(end.hits - warm.hits >= 1000 * 10, `every step was served from the cache (${end.hits - warm.hits} hits)`);
  assert.equal(liveTensors(), live);
  for (const t of [x, target]) t.dispose();
  net.dispose();
  use('default');
});

test('the cap bounds the bytes kept: frees past it go to the system, and lowering it trims at once', () => {
  use('caching', 4 * MiB);
  releaseCachedMemory();
  const before = allocatorStats();
  const blocks = Array.from({ length: 10 }, () => keep(zeros([MiB / 4]))); // ten 1 MiB blocks alive at once
  for (const b of blocks) b.dispose();
  const s = allocatorStats();
  assert.equal(s.capBytes, 4 * MiB);
  assert.ok(s.cachedBytes <= 4 * MiB && s.cachedBytes >= 3 * MiB, `cached ${s.cachedBytes} bytes under a 4 MiB cap`);
  assert.ok(s.overCapFrees - before.overCapFrees >= 6, `${s.overCapFrees - before.overCapFrees} frees went past the cap`);
  use('caching', MiB);
  assert.ok(allocatorStats().cachedBytes <= MiB, 'lowering the cap trims the cache');
  use('caching', 0);
  tidy(() => { zeros([MiB]); });
  assert.equal(allocatorStats().cachedBytes, 0, 'a zero cap keeps nothing');
  use('default');
});

test('switching allocators with tensors alive is safe: each block is freed by the allocator that made it', () => {
  use('caching');
  releaseCachedMemory();
  const base = allocatorStats().inUseBytes;
  const fromCache = keep(full([1000], 3));
  const held = allocatorStats().inUseBytes - base;
  assert.ok(held >= 4000, `the caching allocator holds the tensor (${held} bytes)`);
  use('default');
  const fromDefault = keep(full([1000], 4));
  assert.equal(allocatorStats().inUseBytes - base, held, 'c10\'s allocator made the second tensor');
  use('caching');
  fromDefault.dispose(); // c10's deleter: not this allocator's
  assert.equal(allocatorStats().inUseBytes - base, held);
  use('default');
  assert.equal(fromCache.sum().item(), 3000);
  const cachedBefore = allocatorStats().cachedBytes;
  fromCache.dispose(); // made by the caching allocator, freed while c10's is active: back to the system
  const s = allocatorStats();
  assert.equal(s.inUseBytes, base);
  assert.equal(s.cachedBytes, cachedBefore);
  assert.equal(s.active, false);
});

test('configureRuntime and $DDPM_ALLOCATOR refuse what is not an allocator or a cap, naming it', () => {
  const env = { ...process.env };
  try {
    process.env.DDPM_ALLOCATOR = 'pool';
    assert.throws(() => configureRuntime(), /^ArgumentError: \$DDPM_ALLOCATOR must be caching or default, got "pool"$/);
    process.env.DDPM_ALLOCATOR = 'caching';
    process.env.DDPM_ALLOCATOR_CAP = '12X';
    assert.throws(() => configureRuntime(), /\$DDPM_ALLOCATOR_CAP must be a number of bytes, optionally with K, M or G.*got "12X"; e\.g\. DDPM_ALLOCATOR_CAP=1G/);
    process.env.DDPM_ALLOCATOR_CAP = '3M';
    const r = configureRuntime();
    assert.equal(r.allocator, 'caching');
    assert.equal(r.allocatorCapBytes, 3 * MiB);
    assert.equal(allocatorStats().capBytes, 3 * MiB);
    assert.equal(allocatorStats().active, true);
    assert.equal(configureRuntime({ allocator: 'default' }).allocator, 'default', 'an option wins over the environment');
  } finally {
    process.env = env;
  }
  assert.throws(() => configureRuntime({ allocator: 'big' as CpuAllocator }), /configureRuntime: allocator must be 'caching' or 'default', got "big"/);
  assert.throws(() => configureRuntime({ allocatorCapBytes: -1 }), /configureRuntime: allocatorCapBytes.*integer >= 0/);
  assert.equal(allocatorStats().active, false, 'a refused call changed the allocator');
  use('default');
});

test('sampling in inference mode gives the images no-grad sampling gives, and the model trains on afterwards', () => {
  const model = smallUNet();
  model.eval();
  const diffusion = new Diffusion(makeSchedule({ kind: 'linear', T: 50, betaStart: 1e-4, betaEnd: 0.02 }));
  const o = {
    model: (x: Tensor, t: Tensor, c: Tensor | null) => model.forward(x, t, c),
    diffusion, objective: 'eps' as const, shape: [6, 1, 8, 8] as [number, number, number, number], sampler: 'ddim' as const, steps: 10,
    numClasses: 3, labels: [0, 1, 2, 0, 1, 2], guidance: 1.5,
  };
  const viaInference = sample({ ...o, generator: new Generator(11) });
  assert.equal(viaInference.isInference, true);
  assert.equal(isInferenceMode(), false, 'the scope closed');
  // The same reverse process, driven under noGrad as sample() did before inference mode.
  const sampling = resolveSampling({ ...o, generator: new Generator(11) });
  const viaNoGrad = noGrad(() => runSync(
    reverseProcess({ ops: tensorOps(new Generator(11)), terms: diffusion.terms, sampling, shape: o.shape, labels: o.labels }),
    (call) => callModel(o.model, 3, call.x, call.t, call.labels),
  ));
  assert.equal(viaNoGrad.isInference, false);
  assert.ok(bytes(viaInference).equals(bytes(viaNoGrad)), 'inference-mode samples differ from no-grad samples');

  // Tables the diffusion first made while sampling are normal tensors, and training goes on after sampling.
  inferenceMode(() => { diffusion.table(diffusion.terms.sqrtAlphaBar, 'sqrtAlphaBar'); });
  assert.equal(diffusion.table(diffusion.terms.sqrtAlphaBar, 'sqrtAlphaBar').isInference, false);
  model.train();
  const opt = new Adam(model.namedParameters(), { lr: 1e-3 });
  const loss = tidy(() => {
    const t = full([6], 5, { dtype: 'int64' });
    const { xt, noise } = diffusion.qSample(viaNoGrad, t, undefined, new Generator(1));
    const l = mseLoss(model.forward(xt, t, null), noise);
    l.backward();
    opt.step();
    return l.item();
  });
  assert.ok(Number.isFinite(loss));
  // Autograd refuses to save an inference tensor; a clone made outside inference mode is a normal one.
  const w = model.parameters()[0]!;
  assert.throws(() => tidy(() => viaInference.mul(w.sum()).sum().backward()), /Inference tensors cannot be saved for backward/);
  assert.doesNotThrow(() => tidy(() => viaInference.clone().mul(w.sum()).sum().backward()));
  // A gradient inside inference mode (classifier guidance's, say) needs a normal scope and a clone of x_t.
  const grad = inferenceMode(() => {
    const xt = randn([2, 1, 8, 8]);
    return inferenceMode(() => tidy(() => {
      const x = xt.clone().requiresGrad_();
      x.mul(x).sum().backward();
      return keep(x.grad!.div(2).sub(xt).abs().max());
    }), false);
  });
  assert.equal(grad.item(), 0);
  for (const t of [viaInference, viaNoGrad, grad]) t.dispose();
  model.dispose();
  diffusion.dispose();
});

test('inference-mode scopes nest and restore the grad mode they found, also when fn throws', () => {
  assert.equal(isInferenceMode(), false);
  assert.throws(() => inferenceMode(() => { throw new Error('inside'); }), /^Error: inside$/);
  assert.equal(isInferenceMode(), false);
  noGrad(() => {
    inferenceMode(() => {
      assert.equal(isInferenceMode(), true);
      inferenceMode(() => assert.equal(isInferenceMode(), false), false);
      assert.equal(isInferenceMode(), true);
    });
    assert.equal(isInferenceMode(), false);
  });
});
