// ddpm-ts: Denoising Diffusion Probabilistic Models from TypeScript, on libtorch.
export * from './tensor/index.js';
export * as nn from './nn/index.js';
export * from './diffusion/index.js';
export * from './models/index.js';
export * from './samplers/index.js';
export { presetDefaults, checkRunConfig, runObjective, runNumClasses, type RunConfig, type TrainSettings } from './train/config.js';
export { train, trainStep, buildModel, type TrainOptions, type TrainHooks, type TrainSummary, type TrainingData } from './train/trainer.js';
export { EMA } from './train/ema.js';
// Classifier guidance (Dhariwal & Nichol 2021): the noise-aware classifier, its training task and loading.
export { trainTask, DENOISING, type TrainingTask } from './train/trainer.js';
export { CLASSIFYING, classifierRunConfig, loadClassifier, openClassifier, checkClassifierFits, type OpenClassifier } from './train/classifier.js';
export { NoisyClassifier, noisyClassifierConfig, type NoisyClassifierConfig } from './models/noisy-classifier.js';
export { lrAt, type LrSchedule } from './train/lr-schedule.js';
export { loadRun, resolveResume, type LoadedRun } from './train/checkpoint.js';
// ONNX: export a run or a model, read a file back, run one on onnxruntime-node (loaded when a model is opened).
export { exportRun, onnxMetadata, type ExportRunOptions, type ExportedRun } from './train/export.js';
export { ONNX_FORMAT, readOnnxMetadata, onnxModelInfo, sampleOnnx, type OnnxModelInfo, type OnnxSamplingOptions } from './samplers/onnx-model.js';
export { modelToOnnx, ONNX_IR_VERSION, type OnnxExportOptions } from './models/onnx-export.js';
export { ONNX_NAMES } from './models/onnx-contract.js';
export { OnnxRuntimeModel, type OnnxRuntimeOptions } from './models/onnx-runtime.js';
export { encodeOnnx, decodeOnnx } from './io/onnx.js';
export { RunFolder } from './io/run.js';
export { loadTensors, serializeTensors } from './io/tensors.js';
export { readSafetensorsFile, writeSafetensorsFile, parseSafetensors, serializeSafetensors, SafetensorsError } from './io/safetensors.js';
export { encodePng, decodePng, writePng, type Image8 } from './io/png.js';
export { makeGrid, toUint8Image } from './viz/grid.js';
export { tensorGrid, tensorTrajectoryGrid } from './viz/tensor-grid.js';
export { loadFashionMnist, locateFashionMnist } from './data/fashion-mnist.js';
export { prepareImages, randomHorizontalFlip } from './data/transforms.js';
export { BatchLoader } from './data/loader.js';
export { loadImageFolder, imageFolderTensors } from './data/image-folder.js';
export { openDataset, datasetSpec, type DatasetSpec, type Dataset } from './data/dataset.js';
// FID, KID, precision/recall, the Inception-Score analogue, bits/dim and loss by t: `import { metrics } from 'ddpm-ts'`.
export * as metrics from './eval/index.js';
export * as distributed from './distributed/index.js';
export { initProcessGroup, allReduce, broadcast, barrier, destroyProcessGroup, getRank, getWorldSize, readLaunchEnv, ProcessGroup } from './distributed/index.js';
