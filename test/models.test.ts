// The dli03 and ddpm U-Nets and class conditioning of every preset, against their PyTorch twins
// (fixtures: tools/reference/models_golden.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Tensor, manualSeed, noGrad, tidy, mseLoss, zeros, zerosLike, randn, rand, tensor, ArgumentError,
} from '../src/tensor/index.js';
import {
  createModel, inferencePredictor, PRESETS, Dli02UNet, DLI02_DEFAULTS, Dli03UNet, DLI03_DEFAULTS, DdpmUNet, DDPM_DEFAULTS,
  type DiffusionUNet, type Dli03Config, type DdpmUNetConfig, type ModelConfig, type PresetName,
} from '../src/models/index.js';
import { loadTensors } from '../src/io/tensors.js';
import { fixture, assertClose } from './helpers.js';

const dli03Ref = loadTensors(fixture('dli03_golden.safetensors'));
const ddpmRef = loadTensors(fixture('ddpm_unet_golden.safetensors'));

interface Case {
  preset: 'dli03' | 'ddpm';
  ref: { tensors: Map<string, Tensor>; metadata: Record<string, string> };
  /** The narrow conditional model whose weights the fixture holds. */
  small(numClasses: number): DiffusionUNet;
  /** The preset at its defaults. */
  full(numClasses: number): DiffusionUNet;
}

const smallCfg = (ref: Case['ref']): Record<string, unknown> => JSON.parse(ref.metadata.small_config!) as Record<string, unknown>;
const CASES: Case[] = [
  {
    preset: 'dli03', ref: dli03Ref,
    small: (n) => new Dli03UNet({ ...(smallCfg(dli03Ref) as unknown as Dli03Config), numClasses: n }),
    full: (n) => new Dli03UNet({ ...DLI03_DEFAULTS, numClasses: n }),
  },
  {
    preset: 'ddpm', ref: ddpmRef,
    small: (n) => new DdpmUNet({ ...(smallCfg(ddpmRef) as unknown as DdpmUNetConfig), numClasses: n }),
    full: (n) => new DdpmUNet({ ...DDPM_DEFAULTS, numClasses: n }),
  },
];

function get(ref: Case['ref'], k: string): Tensor {
  const t = ref.tensors.get(k);
  assert.ok(t, `fixture has no tensor ${k}`);
  return t;
}

/** The small model with the fixture's weights (the unconditional one takes the same weights minus the class modules). */
function loadedSmall(c: Case, numClasses: number): DiffusionUNet {
  const m = c.small(numClasses);
  m.loadStateDict(new Map([...m.stateDict().keys()].map((k) => [k, get(c.ref, `small.${k}`)])), `${c.preset} golden`);
  return m;
}

for (const c of CASES) {
  test(`${c.preset}: parameter counts and state-dict names equal PyTorch's at the defaults, with and without classes`, () => {
    const params = JSON.parse(c.ref.metadata.params!) as Record<string, number>;
    const names = JSON.parse(c.ref.metadata.names!) as Record<string, string[]>;
    for (const [key, n] of [['uncond', 0], ['cond', 10]] as const) {
      const m = c.full(n);
      assert.equal(m.numClasses, n);
      assert.equal(m.numParameters(), params[key], `${c.preset} ${key} parameter count`);
      assert.deepEqual([...m.stateDict().keys()], names[key], `${c.preset} ${key} state-dict names (in order)`);
      if (n === 0) assert.ok(![...m.stateDict().keys()].some((k) => /c_embed|classes_mlp/.test(k)), 'no class modules when numClasses = 0');
      m.dispose();
    }
  });

  test(`${c.preset}: manualSeed(0) at the defaults gives torch.manual_seed(0)'s outputs (atol 1e-5)`, () => noGrad(() => tidy(() => {
    const x = get(c.ref, 'default.x');
    const t = get(c.ref, 'default.t');
    manualSeed(0);
    const uncond = c.full(0);
    assertClose(`${c.preset} default unconditional`, uncond.forward(x, t), get(c.ref, 'default.out_uncond'), 1e-5, 1e-5);
    manualSeed(0);
    const cond = c.full(10);
    assertClose(`${c.preset} default conditional`, cond.forward(x, t, get(c.ref, 'default.c')), get(c.ref, 'default.out_cond'), 1e-5, 1e-5);
    uncond.dispose();
    cond.dispose();
  })));

  test(`${c.preset}: forward equals PyTorch with c, without c and unconditional; gradients equal PyTorch's`, () => tidy(() => {
    const x = get(c.ref, 'x');
    const t = get(c.ref, 't');
    const m = loadedSmall(c, 10);
    noGrad(() => assertClose(`${c.preset} no c`, m.forward(x, t), get(c.ref, 'small.out_null'), 1e-5, 1e-5));
    const out = m.forward(x, t, get(c.ref, 'c'));
    assertClose(`${c.preset} with c`, out, get(c.ref, 'small.out_cond'), 1e-5, 1e-5);
    const loss = mseLoss(out, zerosLike(out)); // = out.pow(2).mean()
    assertClose('loss', [loss.item()], [get(c.ref, 'small.loss').item()], 1e-6, 1e-5);
    loss.backward();
    for (const [k, p] of m.namedParameters()) assertClose(`grad of ${k}`, p.grad!, get(c.ref, `small.grad.${k}`), 1e-5, 1e-4);
    const u = loadedSmall(c, 0);
    noGrad(() => assertClose(`${c.preset} unconditional`, u.forward(x, t), get(c.ref, 'small.out_uncond'), 1e-5, 1e-5));
    m.dispose();
    u.dispose();
  }));
}

/** Every BatchNorm's affine terms and running statistics randomised, so eval mode and folding are not near-identities. */
function randomiseBatchNorms(m: Dli02UNet): void {
  noGrad(() => {
    const sd = m.stateDict();
    for (const [k, v] of sd) {
      const bn = k.replace(/\.(weight|bias|running_mean|running_var)$/, '');
      if (!sd.has(`${bn}.running_mean`)) continue;
      if (k.endsWith('.running_var')) v.copy_(rand(v.shape).add(0.5));
      else if (k.endsWith('.weight')) v.copy_(randn(v.shape).mul(0.1).add(1));
      else if (k.endsWith('.bias') || k.endsWith('.running_mean')) v.copy_(randn(v.shape).mul(0.1));
    }
  });
}

test('dli02 with classes: parameter count and names as PyTorch, manualSeed(0) outputs equal PyTorch\'s in eval and train mode', () => noGrad(() => tidy(() => {
  manualSeed(0);
  const m = new Dli02UNet({ ...DLI02_DEFAULTS, numClasses: 10 });
  assert.equal(m.numParameters(), Number(dli03Ref.metadata.dli02_cond_params));
  assert.equal(m.numParameters(), 240385 + 6272, 'the notebook model plus two EmbedBlocks from 10 classes');
  assert.deepEqual([...m.stateDict().keys()], JSON.parse(dli03Ref.metadata.dli02_cond_names!));
  const [x, t, c] = ['x', 't', 'c'].map((k) => get(dli03Ref, `dli02_cond.${k}`)) as [Tensor, Tensor, Tensor];
  assertClose('dli02 cond eval', m.eval().forward(x, t, c), get(dli03Ref, 'dli02_cond.out_eval'), 1e-5, 1e-5);
  assertClose('dli02 cond train', m.train().forward(x, t, c), get(dli03Ref, 'dli02_cond.out_train'), 1e-5, 1e-5);
  m.dispose();
})));

test('dli02 with classes: BatchNorm-folded inference equals the unfolded eval forward (atol 1e-5), with and without c', () => noGrad(() => {
  manualSeed(3);
  const m = new Dli02UNet({ ...DLI02_DEFAULTS, numClasses: 10 });
  randomiseBatchNorms(m);
  m.eval();
  const folded = inferencePredictor(m);
  tidy(() => {
    const x = randn([4, 1, 16, 16]);
    const t = tensor([0, 37, 74, 149], [4], { dtype: 'int64' });
    const c = get(dli03Ref, 'c');
    const withC = m.forward(x, t, c);
    assertClose('folded vs eval, with c', folded.forward(x, t, c), withC, 1e-5, 1e-5);
    assertClose('folded vs eval, no c', folded.forward(x, t), m.forward(x, t), 1e-5, 1e-5);
    assert.ok(withC.sub(m.forward(x, t)).abs().max().item() > 1e-4, 'the class input changes the output by more than the tolerance');
  });
  folded.dispose();
  m.dispose();
}));

test('unconditional dli02 is the notebook model: no class modules, 240,385 parameters', () => {
  const m = createModel({ preset: 'dli02', imageChannels: 1, imageSize: 16, T: 150 });
  assert.equal(m.numClasses, 0);
  assert.equal(m.numParameters(), 240385);
  assert.ok(![...m.stateDict().keys()].some((k) => k.includes('c_embed')));
  m.dispose();
});

const SIZES: Record<PresetName, number> = { dli02: 16, dli03: 16, ddpm: 28 };
const config = (preset: PresetName, o: Partial<ModelConfig> = {}): ModelConfig => ({ preset, imageChannels: 1, imageSize: SIZES[preset], T: 150, ...o });

test('every preset: backward from a conditional forward gives a finite gradient for every parameter', () => {
  assert.deepEqual([...PRESETS], ['dli02', 'dli03', 'ddpm']);
  for (const preset of PRESETS) {
    tidy(() => {
      manualSeed(0);
      const m = createModel(config(preset, { numClasses: 10 }));
      const s = SIZES[preset];
      const out = m.forward(randn([3, 1, s, s]), tensor([0, 5, 149], [3], { dtype: 'int64' }), get(dli03Ref, 'c').narrow(0, 1, 3));
      out.square().mean().backward();
      for (const [k, p] of m.namedParameters()) {
        assert.ok(p.grad, `${preset}: ${k} got no gradient`);
        assert.ok(p.grad.isfinite().all().item(), `${preset}: ${k} has a non-finite gradient`);
      }
      m.dispose();
    });
  }
});

test('every preset: a zero row of c equals omitting c for that row, and a zero c equals no c', () => noGrad(() => {
  for (const preset of PRESETS) {
    tidy(() => {
      manualSeed(1);
      const m = createModel(config(preset, { numClasses: 10 })).eval();
      const s = SIZES[preset];
      const x = randn([4, 1, s, s]);
      const t = tensor([3, 50, 100, 140], [4], { dtype: 'int64' });
      const c = get(dli03Ref, 'c'); // row 2 is a dropped label: all zeros
      const none = m.forward(x, t);
      assertClose(`${preset}: zero row`, m.forward(x, t, c).narrow(0, 2, 1), none.narrow(0, 2, 1), 0);
      assertClose(`${preset}: zero c`, m.forward(x, t, zeros([4, 10])), none, 0);
      assertClose(`${preset}: null c`, m.forward(x, t, null), none, 0);
      const p = inferencePredictor(m);
      assertClose(`${preset}: inference predictor takes c`, p.forward(x, t, c), m.forward(x, t, c), 1e-5, 1e-5);
      p.dispose();
      m.dispose();
    });
  }
}));

test('every preset: a class input the model cannot take is refused, naming expected and actual shapes', () => tidy(() => {
  for (const preset of PRESETS) {
    const s = SIZES[preset];
    const x = zeros([4, 1, s, s]);
    const t = zeros([4], { dtype: 'int64' });
    const uncond = createModel(config(preset));
    assert.throws(() => uncond.forward(x, t, zeros([4, 10])), (e: Error) => e instanceof ArgumentError
      && new RegExp(`^${preset}: this model is unconditional \\(numClasses 0\\) but was given a class input c \\(tensor of shape \\[4, 10\\] and dtype float32\\); omit c, or build the model with numClasses > 0$`).test(e.message));
    uncond.dispose();
    const m = createModel(config(preset, { numClasses: 10 }));
    const bad = (c: Tensor, got: string): void => assert.throws(() => m.forward(x, t, c), (e: Error) => e instanceof ArgumentError
      && e.message === `${preset}: class input c must be float32 of shape [4, 10] (batch, numClasses: one-hot rows times the drop mask), got ${got}; one-hot the labels and convert with .float()`);
    bad(zeros([4, 9]), 'float32 of shape [4, 9]');
    bad(zeros([3, 10]), 'float32 of shape [3, 10]');
    bad(zeros([4], { dtype: 'int64' }), 'int64 of shape [4]');
    bad(zeros([4, 10], { dtype: 'int64' }), 'int64 of shape [4, 10]');
    bad(zeros([4, 10], { dtype: 'float64' }), 'float64 of shape [4, 10]');
    m.dispose();
  }
}));

/** Throws an ArgumentError whose message matches `re` (assert.throws with a RegExp would test "ArgumentError: ..."). */
function refuses(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: Error) => e instanceof ArgumentError && re.test(e.message));
}

test('an image size the U-Net cannot divide is refused, naming the preset, the size and the nearest sizes that work', () => {
  const refused = (c: ModelConfig, re: RegExp): void => refuses(() => createModel(c), re);
  refused(config('ddpm', { imageSize: 30 }), /^ddpm: image size 30 is not divisible by 4 \(two 2x downsamplings\); use 28 or 32$/);
  refused(config('dli03', { imageSize: 18 }), /^dli03: image size 18 is not divisible by 4 \(two 2x downsamplings\); use 16 or 20$/);
  refused(config('dli03', { imageSize: 6.5 }), /^dli03: image size 6\.5 is not divisible by 4 \(two 2x downsamplings\); use 4 or 8$/);
  refused(config('ddpm', { imageSize: 2 }), /^ddpm: image size 2 is not a positive multiple of 4 \(two 2x downsamplings\); use 4$/);
  refused(config('ddpm', { imageSize: 0 }), /^ddpm: image size 0 is not a positive multiple of 4 \(two 2x downsamplings\); use 4$/);
  refused(config('dli02', { imageSize: 18 }), /^dli02: image size 18 cannot be halved twice by the U-Net's two max-pools; use a multiple of 4 \(the notebook uses 16\)$/);
  refuses(() => new DdpmUNet({ ...DDPM_DEFAULTS, dimMults: [1, 2, 2, 2] }), /^ddpm: image size 28 is not divisible by 8 \(three 2x downsamplings\); use 24 or 32$/);
  for (const preset of PRESETS) {
    refuses(() => createModel(config(preset, { numClasses: -1 })), new RegExp(`^${preset}: numClasses must be an integer >= 0 \\(0 = unconditional\\), got -1$`));
    refuses(() => createModel(config(preset, { T: 0 })), new RegExp(`^${preset}: T must be an integer >= 1, got 0$`));
  }
  refuses(() => createModel(config('dli03', { preset: 'unet2' as 'dli03' })), /^unknown preset "unet2"; expected one of dli02, dli03, ddpm$/);
});
