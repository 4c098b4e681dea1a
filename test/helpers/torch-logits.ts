// The demo's checkpoints in PyTorch: examples/fashion-mnist/load_in_pytorch.py loads one strictly into the matching
// torch.nn module and prints its eval-mode logits for the images on stdin. Where /usr/bin/python3 has no torch the
// tests that use this are skipped.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { saveSafetensors, type StateDict } from '../../lib/index.js';

const PYTHON = '/usr/bin/python3';
export const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { timeout: 120_000 }).status === 0;

/** PyTorch's eval-mode logits for `images` (float32, one image per row) through the module `stateDict` loads into. */
export function torchLogits(stateDict: StateDict, file: string, images: Float32Array): Float32Array {
  const checkpoint = join(mkdtempSync(join(tmpdir(), 'normkit-demo-')), file);
  writeFileSync(checkpoint, saveSafetensors(stateDict, { format: 'pt' }));
  const run = spawnSync(PYTHON, [join(__dirname, '../../examples/fashion-mnist/load_in_pytorch.py'), checkpoint, '--logits'],
    { input: Buffer.from(images.buffer, images.byteOffset, images.byteLength), timeout: 120_000 });
  expect(run.status, String(run.stderr)).toBe(0);
  const out = run.stdout as Buffer;
  return new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength));
}

/** Every logit within 1e-4 of the largest |logit| (float32 products summed in different orders). */
export function expectSameLogits(torch: Float32Array, ours: ArrayLike<number>): void {
  expect(torch.length).toBe(ours.length);
  let scale = 0;
  for (let i = 0; i < ours.length; i++) scale = Math.max(scale, Math.abs(ours[i]!));
  for (let i = 0; i < ours.length; i++) expect(Math.abs(torch[i]! - ours[i]!)).toBeLessThan(1e-4 * scale);
}
