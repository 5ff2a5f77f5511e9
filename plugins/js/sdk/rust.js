// Text rules shared with the Rust SDK, so a JavaScript plugin reads configuration, classifies
// XIDs and words its findings exactly as the Rust one does. JavaScript's own rules differ in
// ways that matter here: `Number(" 0x10 ")` is 16 and `Number("")` is 0 where Rust's `parse`
// fails, `String.prototype.trim` removes U+FEFF but keeps U+0085, `toLowerCase` folds non-ASCII
// letters, and `String(1e21)` is "1e+21" where Rust prints every digit.

export const U64_MAX = (1n << 64n) - 1n;

// Rust's `char::is_whitespace`: the Unicode White_Space property.
export const WHITESPACE = new Set(
  '\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000',
);

const FLOAT = /^[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$/i;
const UNSIGNED = /^\+?[0-9]+$/;

/** `str::trim`. */
export function trim(s) {
  const cs = [...s];
  let a = 0;
  let b = cs.length;
  while (a < b && WHITESPACE.has(cs[a])) a++;
  while (b > a && WHITESPACE.has(cs[b - 1])) b--;
  return cs.slice(a, b).join('');
}

/** `str::to_ascii_lowercase`: only A-Z change. */
export function asciiLower(s) {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** `s.parse::<f64>().ok()` (no trimming); `undefined` when it does not parse. */
export function parseF64(s) {
  if (!FLOAT.test(s)) return undefined;
  const neg = s.startsWith('-');
  const body = asciiLower(s.replace(/^[+-]/, ''));
  if (body === 'nan') return NaN;
  if (body === 'inf' || body === 'infinity') return neg ? -Infinity : Infinity;
  return Number(s);
}

/** `s.parse::<u64>().ok()` (no trimming), as a BigInt: ASCII digits, an optional `+`, at most 2^64-1. */
export function parseU64(s) {
  if (!UNSIGNED.test(s)) return undefined;
  const n = BigInt(s.replace(/^\+/, ''));
  return n <= U64_MAX ? n : undefined;
}

/** How Rust's `{}` prints an f64: `97`, `97.5`, `0.0000001`, `inf`, `NaN`. */
export function fmtF64(x) {
  x = Number(x);
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (Object.is(x, -0)) return '-0';
  const r = String(x);
  return r.includes('e') ? expandExponent(r) : r;
}

function expandExponent(r) {
  let [mantissa, exp] = r.split('e');
  let sign = '';
  if (mantissa.startsWith('-')) {
    sign = '-';
    mantissa = mantissa.slice(1);
  }
  const [whole, frac = ''] = mantissa.split('.');
  const all = whole + frac;
  const lead = all.length - all.replace(/^0+/, '').length;
  const digits = all.slice(lead);
  const point = whole.length + Number(exp) - lead;
  let out;
  if (point <= 0) out = '0.' + '0'.repeat(-point) + digits;
  else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length);
  else out = digits.slice(0, point) + '.' + digits.slice(point);
  return sign + out;
}
