import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // forks, not threads/vm pools: the addon and OpenMP live per process, and vm contexts break
    // `toThrow(TypeError)` across realms.
    pool: 'forks',
    testTimeout: 60_000,
    reporters: ['default'],
  },
});
