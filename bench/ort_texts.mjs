#!/usr/bin/env node
// ONNX Runtime peer on the 1,000 ImageNet prompts: texts/s of textual.onnx on the engine's token ids.
//
//   node bench/ort_texts.mjs --ids IDS_JSON [--ort /tmp/ort] [--onnx /tmp/onnx] [--model vitb32] [--threads 2] [--spin 0]
//
// IDS_JSON comes from `zeroshot bench --save-imagenet-ids`. All prompts in one run, padded with the end token to the
// longest (the Hugging Face pipeline's padding; pooling takes the first end token, so padding is inert). Session
// options as /work/shared/tools/ort_bench.mjs. Prints one JSON line.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const args = { ids: '', ort: '/tmp/ort', onnx: '/tmp/onnx', model: 'vitb32', threads: 2, spin: '0' };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]}`);
  args[k] = process.argv[++i];
}
const require = createRequire(path.join(path.resolve(args.ort), 'package.json'));
const ort = require('onnxruntime-node');
const ids = JSON.parse(readFileSync(args.ids, 'utf8'));
const EOS = 49407n;
const tensor = (list) => {
  const L = Math.max(...list.map((t) => t.length));
  const a = new BigInt64Array(list.length * L).fill(EOS);
  list.forEach((t, i) => t.forEach((v, j) => { a[i * L + j] = BigInt(v); }));
  return new ort.Tensor('int64', a, [list.length, L]);
};
const s = await ort.InferenceSession.create(path.join(args.onnx, args.model, 'textual.onnx'), {
  executionProviders: ['cpu'], intraOpNumThreads: Number(args.threads), interOpNumThreads: 1,
  graphOptimizationLevel: 'all', executionMode: 'sequential',
  extra: { session: { intra_op: { allow_spinning: String(args.spin) } } },
});
await s.run({ input_ids: tensor(ids.slice(0, 8)) });  // warm-up
const all = tensor(ids);
const t0 = performance.now();
await s.run({ input_ids: all });
const dt = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ peer: `onnxruntime-node ${require('onnxruntime-node/package.json').version}`,
  texts: ids.length, padded_to: all.dims[1], texts_per_s_imagenet1000: ids.length / dt }));
