// The bench's roofline copies (memcpy and non-temporal stores over threads) copy every byte, whatever the
// destination's alignment and the length's tail: a ratio against a copy that skips bytes would flatter every kernel.
import { describe, expect, it } from 'vitest';
import { native } from '../lib/binding.js';

describe('the roofline copy', () => {
  for (const streaming of [false, true]) {
    it(`${streaming ? 'non-temporal' : 'memcpy'}: every element, at odd offsets and lengths, on 1 and 2 threads`, () => {
      // Copies of fewer than two grains of elements (native/kernels.h kGrainElems) run on one thread, as the kernels do.
      const grain = native().info().grainElems;
      for (const [offset, length] of [[0, 2 * grain + 3], [1, 2 * grain + 70_001], [2, 70_001], [3, 17], [5, 0]] as const) {
        for (const threads of [1, 2]) {
          const src = Float32Array.from({ length }, (_, i) => i * 0.5 + 1);
          const dst = new Float32Array(new ArrayBuffer((length + offset + 1) * 4), offset * 4, length);
          native().copy(src, dst, threads, streaming);
          expect(Buffer.from(dst.buffer, dst.byteOffset, dst.byteLength).equals(Buffer.from(src.buffer))).toBe(true);
        }
      }
    });
  }
});
