const DURATION =
  /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/**
 * Parses an ISO-8601 duration made of days, hours, minutes and seconds (`PT48H`, `P7D`, `PT5M`, `PT1H30M`)
 * into milliseconds. Years, months and weeks are refused: their length depends on the calendar.
 * Returns undefined when the text is not such a duration.
 */
export function parseDurationInMs(text: string): number | undefined {
  const match = DURATION.exec(text.trim().toUpperCase());
  if (!match || text.trim().toUpperCase() === 'P' || /T$/.test(text.trim().toUpperCase())) return undefined;
  const [, days, hours, minutes, seconds] = match;
  const total =
    Number(days ?? 0) * 86_400_000 +
    Number(hours ?? 0) * 3_600_000 +
    Number(minutes ?? 0) * 60_000 +
    Number(seconds ?? 0) * 1_000;
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

/** Formats milliseconds as a short human duration (`1h 5m`, `42s`, `850ms`) for log lines. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return (
    [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', sec ? `${sec}s` : ''].filter(Boolean).join(' ') ||
    '0s'
  );
}
