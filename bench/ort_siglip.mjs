// The ONNX Runtime peer of bench/siglip_peers.py: the towers bench/siglip_onnx_export.py wrote, through
// onnxruntime-node (installed in /tmp/ort as shared/tools/README.md says), with shared/tools/ort_bench.mjs's
// settings (2 intra-op threads, no spinning: its best on 2 vCPUs).
//   node bench/ort_siglip.mjs --ort /tmp/ort --onnx /tmp/onnx/siglip-b16 --batch N --iters N [--texts] [--threads 2]
// Prints one JSON line: images_per_s (random pixels), or texts_per_s (12 tokens padded to 64 with the mask).
import { createRequire } from 'node:module';
import path from 'node:path';

const args = { ort: '/tmp/ort', onnx: '', batch: 1, iters: 3, threads: 2, texts: false };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  if (k === 'texts') args.texts = true;
  else args[k] = process.argv[++i];
}
const ort = createRequire(path.join(args.ort, 'package.json'))('onnxruntime-node');
const batch = +args.batch, iters = +args.iters;
const options = { executionProviders: ['cpu'], intraOpNumThreads: +args.threads, interOpNumThreads: 1,
  graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
let t = performance.now();
const s = await ort.InferenceSession.create(path.join(args.onnx, args.texts ? 'textual.onnx' : 'visual.onnx'), options);
const loadS = (performance.now() - t) / 1000;
let feeds;
if (args.texts) {
  const L = 64, ids = new BigInt64Array(batch * L).fill(1n), mask = new BigInt64Array(batch * L);
  for (let b = 0; b < batch; b++)
    for (let j = 0; j < 12; j++) {
      if (j < 11) ids[b * L + j] = BigInt(3 + ((b * 31 + j * 7) % 497));
      mask[b * L + j] = 1n;
    }
  feeds = { input_ids: new ort.Tensor('int64', ids, [batch, L]), attention_mask: new ort.Tensor('int64', mask, [batch, L]) };
} else {
  const S = 224, px = new Float32Array(batch * 3 * S * S);
  for (let i = 0; i < px.length; i++) px[i] = Math.random() * 2 - 1;
  feeds = { pixel_values: new ort.Tensor('float32', px, [batch, 3, S, S]) };
}
await s.run(feeds);  // warm-up, untimed
t = performance.now();
for (let i = 0; i < iters; i++) await s.run(feeds);
const secs = (performance.now() - t) / 1000;
console.log(JSON.stringify({ peer: 'onnxruntime-node ' + (ort.env?.versions?.common ?? ''), batch, iters,
  load_s: loadS, [args.texts ? 'texts_per_s' : 'images_per_s']: batch * iters / secs, threads: +args.threads }));
