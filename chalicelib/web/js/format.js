// Numbers and dates for display, and CSV: one place so tables, charts and downloads agree.

export function num(value, digits = 1, unit = '') {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'n/a';
  const text = (Math.round(value * 10 ** digits) / 10 ** digits + 0).toFixed(digits);
  return unit ? `${text} ${unit}` : text;
}

export function signed(value, digits = 1, unit = '') {
  if (typeof value !== 'number' || !Number.isFinite(value)) return 'n/a';
  const text = num(value, digits, unit);
  return value > 0 ? `+${text}` : text;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}

export function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleString();
}

export function duration(seconds) {
  if (typeof seconds !== 'number') return '';
  const m = Math.floor(seconds / 60);
  return `${m}:${(seconds - m * 60).toFixed(1).padStart(4, '0')}`;
}

function cell(value) {
  const text = value === null || value === undefined ? '' : String(value);
  // Quote when needed; a leading = + - @ is prefixed with ' so a spreadsheet never runs it.
  const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function csv(rows) {
  return `${rows.map((row) => row.map(cell).join(',')).join('\r\n')}\r\n`;
}
