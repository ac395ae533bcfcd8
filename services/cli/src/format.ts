// Money, sizes and durations as people read them.

/** Micro-dollars as dollars: cents for amounts of a dollar or more, else enough digits to show it. */
export function formatMicros(micros: bigint | number): string {
  const n = Number(micros);
  if (n === 0) return "$0.00";
  if (Math.abs(n) >= 1_000_000) return `$${(n / 1e6).toFixed(2)}`;
  // Small amounts keep four decimals (six when that would show nothing), trailing zeros trimmed down to cents.
  const trim = (t: string) => t.replace(/(\.\d\d\d*?)0+$/, "$1");
  const four = trim((n / 1e6).toFixed(4));
  return `$${/^-?0\.00$/.test(four) ? trim((n / 1e6).toFixed(6)) : four}`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** 75_000 → "01:15"; an hour or more → "1:02:03". */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}
