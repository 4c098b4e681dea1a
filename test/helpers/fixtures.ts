// Reads the golden fixtures written by test/fixtures/gen_fixtures.py (PyTorch, float64 reference).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export interface FixtureTensor { shape: number[]; data: number[] }

export interface FixtureStep {
  mode: 'train' | 'eval';
  x: FixtureTensor;
  dy: FixtureTensor | null;
  y: number[];
  dx: number[] | null;
  state: Record<string, number[] | number | null | undefined>;
}

export interface FixtureCase {
  name: string;
  layer: string;
  numFeatures?: number;
  args?: unknown[];
  dtype: 'float32' | 'float64';
  options: Record<string, unknown>;
  initial?: Record<string, number[]>;
  steps: FixtureStep[];
}

/** The cases of one fixture file, from test/fixtures/ (or `dir`: test/platform/run.ts runs from a build folder). */
export function loadCases(file: string, dir = join(__dirname, '..', 'fixtures')): FixtureCase[] {
  const raw = gunzipSync(readFileSync(join(dir, file)));
  const parsed = JSON.parse(raw.toString('utf8')) as { cases: FixtureCase[] };
  if (!Array.isArray(parsed.cases) || parsed.cases.length === 0) throw new Error(`${file}: no cases`);
  return parsed.cases;
}
