/** First index i in [0, end) with sorted[i] >= x (end when there is none). */
export function lowerBound(sorted: ArrayLike<number>, x: number, end = sorted.length): number {
  let lo = 0, hi = end;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}
