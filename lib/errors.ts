// Error messages that name what was expected and what was given (sharp's invalidParameterError, PyTorch's wording
// where PyTorch has one). TypeError for the kind of a value, RangeError for its size or range (better-sqlite3's split).

/** A short, readable description of any value for an error message. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) {
    const n = (value as { length?: number }).length;
    return `${value.constructor.name}${n === undefined ? '' : ` of length ${n}`}`;
  }
  if (typeof value === 'function') return 'function';
  const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
  return ctor && ctor !== 'Object' ? `${ctor} object` : 'object';
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** `Expected <expected> for <name> but received <actual>` as a TypeError. */
export function invalidType(name: string, expected: string, actual: unknown): TypeError {
  return new TypeError(`Expected ${expected} for ${name} but received ${describe(actual)}`);
}

/** `Expected <expected> for <name> but received <actual>` as a RangeError. */
export function invalidRange(name: string, expected: string, actual: unknown): RangeError {
  return new RangeError(`Expected ${expected} for ${name} but received ${describe(actual)}`);
}

/** Levenshtein distance, for "did you mean" hints on misspelled option names. */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(up + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

/** The closest known name, compared case- and underscore-insensitively (track_running_stats -> trackRunningStats). */
export function closestName(given: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.replace(/_/g, '').toLowerCase();
  let best: string | undefined;
  let bestDist = Infinity;
  for (const k of known) {
    const d = editDistance(norm(given), norm(k));
    if (d < bestDist) { bestDist = d; best = k; }
  }
  return bestDist <= Math.max(2, Math.floor(given.length / 3)) ? best : undefined;
}
