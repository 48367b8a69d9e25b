// Exact numbers for answer comparison: every number is a reduced fraction of BigInts, so "18.00" equals
// "18", "0.5" equals "1/2", "1/3" does not equal "0.333", and 30-digit integers compare exactly.

export interface Rational {
  /** Numerator, with the sign. */
  num: bigint;
  /** Denominator, always > 0; the fraction is reduced. */
  den: bigint;
}

export interface NumberMatch {
  value: Rational;
  /** The matched text, e.g. "-1,234.50" or "3/4". */
  text: string;
  start: number;
  end: number;
}

function abs(x: bigint): bigint {
  return x < 0n ? -x : x;
}

function gcd(a: bigint, b: bigint): bigint {
  a = abs(a);
  b = abs(b);
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** num/den reduced with a positive denominator; null when den is 0. */
export function makeRational(num: bigint, den: bigint = 1n): Rational | null {
  if (den === 0n) return null;
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const g = gcd(num, den);
  return g > 1n ? { num: num / g, den: den / g } : { num, den };
}

export function rationalEquals(a: Rational, b: Rational): boolean {
  return a.num === b.num && a.den === b.den;
}

/**
 * Canonical text of a number: an integer ("-12"), a terminating decimal without trailing zeros ("0.5",
 * "2.25"), or a reduced fraction ("1/3") when the decimal would not terminate.
 */
export function formatRational(r: Rational): string {
  if (r.den === 1n) return r.num.toString();
  let d = r.den;
  let twos = 0;
  let fives = 0;
  while (d % 2n === 0n) {
    d /= 2n;
    twos++;
  }
  while (d % 5n === 0n) {
    d /= 5n;
    fives++;
  }
  if (d !== 1n) return `${r.num}/${r.den}`;
  const places = Math.max(twos, fives);
  const scaled = abs(r.num) * 10n ** BigInt(places) / r.den;
  const digits = scaled.toString().padStart(places + 1, '0');
  const text = `${digits.slice(0, digits.length - places)}.${digits.slice(digits.length - places)}`.replace(/0+$/, '');
  return (r.num < 0n ? '-' : '') + text;
}

/** A plain decimal literal ("-1,234.50", "007", ".5"), commas as thousands separators allowed. */
function decimalToRational(literal: string): Rational | null {
  let s = literal.replace(/,/g, '').replace(/\u2212/g, '-');
  let negative = false;
  if (s.startsWith('-')) {
    negative = true;
    s = s.slice(1).trimStart();
  }
  const m = /^(\d*)(?:\.(\d+))?$/.exec(s);
  if (!m || (m[1] === '' && m[2] === undefined)) return null;
  const frac = m[2] ?? '';
  const num = BigInt((m[1] || '0') + frac) * (negative ? -1n : 1n);
  return makeRational(num, 10n ** BigInt(frac.length));
}

// A number inside prose. It may not continue a word, a decimal or a slash ("x2", "1.2.3", "12/25/2020"
// give no extra numbers). The sign counts only when the minus does not follow a word character (so
// "16-3" is 16 and 3, while "x = -3" is -3). Thousands separators must come in groups of three digits.
// A fraction a/b needs integers written without spaces ("3/4", not "12 / 4", which is a division in a
// worked solution) and is not part of a date ("12/25/2020").
const NUMBER_RE =
  /(?<![\w./])([-\u2212])?(?:(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(\d+))?|\.(\d+))(?:\/(\d+)(?![\d/]))?/g;

/** Every number in `text`, in order of appearance. */
export function findNumbers(text: string): NumberMatch[] {
  const out: NumberMatch[] = [];
  NUMBER_RE.lastIndex = 0;
  for (let m = NUMBER_RE.exec(text); m !== null; m = NUMBER_RE.exec(text)) {
    const sign = m[1] ? '-' : '';
    let value: Rational | null;
    if (m[5] !== undefined && m[2] !== undefined && m[3] === undefined && !m[2].includes(',')) {
      value = makeRational(BigInt(sign + m[2]), BigInt(m[5]));
      if (value === null) {
        // "5/0": not a fraction; keep the numerator only.
        value = makeRational(BigInt(sign + m[2]));
        out.push({ value: value!, text: sign + m[2], start: m.index, end: m.index + m[0].indexOf('/') });
        continue;
      }
      out.push({ value, text: m[0], start: m.index, end: m.index + m[0].length });
      continue;
    }
    const body = m[2] !== undefined ? m[2] + (m[3] !== undefined ? `.${m[3]}` : '') : `.${m[4]}`;
    value = decimalToRational(sign + body);
    if (value === null) continue;
    // A trailing "/b" that was not taken as a fraction (decimal or comma numerator) is left out.
    const len = m[0].length - (m[5] !== undefined ? m[5].length + 1 : 0);
    out.push({ value, text: m[0].slice(0, len), start: m.index, end: m.index + len });
  }
  return out;
}

/**
 * The value of a string that is one number, possibly decorated: "$1,234", "18.00", "-5", "3/4",
 * "50%", "12 apples". Returns the first number found, or null when there is none.
 */
export function parseNumber(text: string): Rational | null {
  const first = findNumbers(text)[0];
  return first ? first.value : null;
}

/** Canonical text of the first number in `text` (see formatRational), or null. */
export function normalizeNumber(text: string): string | null {
  const r = parseNumber(text);
  return r ? formatRational(r) : null;
}
