/** Samples of one measured quantity (milliseconds, bytes, MB/s...). */
export interface Series {
  samples: number[];
  median: number;
  min: number;
  max: number;
}

export function series(samples: number[]): Series {
  if (samples.length === 0) throw new Error("no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median =
    sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { samples, median, min: sorted[0] as number, max: sorted.at(-1) as number };
}

/** One side of a comparison: how to take one sample (after whatever reset it needs). */
export interface Contender {
  name: string;
  sample: () => Promise<number>;
}

export interface PairOptions {
  warmup: number;
  runs: number;
  /** Called before each round, e.g. to print progress. */
  onRound?: (round: number, total: number) => void;
}

/**
 * Takes `runs` samples of each contender after `warmup` unrecorded rounds, alternating which goes first in
 * each round: a load spike from the rest of the machine hits both sides instead of one.
 */
export async function compare<T extends Contender[]>(
  contenders: [...T],
  options: PairOptions,
): Promise<{ [K in keyof T]: Series }> {
  for (let i = 0; i < options.warmup; i++) for (const c of contenders) await c.sample();
  const samples: number[][] = contenders.map(() => []);
  for (let round = 0; round < options.runs; round++) {
    options.onRound?.(round + 1, options.runs);
    const order = contenders.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) samples[i]?.push(await (contenders[i] as Contender).sample());
  }
  return samples.map(series) as { [K in keyof T]: Series };
}
