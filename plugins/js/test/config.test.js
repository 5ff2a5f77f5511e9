import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Config, fmtF64 } from '../sdk/index.js';

test('typed getters parse as Rust does', () => {
  const c = new Config([
    ['n', ' 85.5 '],
    ['i', '600'],
    ['plus', '+7'],
    ['neg', '-1'],
    ['under', '1_000'],
    ['arabic', '\u0663'],
    ['big', '18446744073709551616'],
    ['max', '18446744073709551615'],
    ['exp', '1e3'],
    ['dot', '.5'],
    ['inf', 'Infinity'],
    ['empty', ''],
    ['hex', '0x10'],
    ['bom', '\ufeff5'],
    ['ws', '\u30005\u0085'],
  ]);
  assert.equal(c.f64('n'), 85.5);
  assert.equal(c.u64('i'), 600n);
  assert.equal(c.int('i'), 600);
  assert.equal(c.f64('i'), 600);
  assert.equal(c.u64('plus'), 7n);
  assert.equal(c.u64('neg'), undefined);
  assert.equal(c.f64('neg'), -1);
  assert.equal(c.u64('n'), undefined);
  assert.equal(c.u64('under'), undefined);
  assert.equal(c.f64('under'), undefined);
  assert.equal(c.u64('arabic'), undefined);
  assert.equal(c.u64('big'), undefined);
  assert.equal(c.u64('max'), 2n ** 64n - 1n);
  assert.equal(c.int('max'), undefined, 'above MAX_SAFE_INTEGER');
  assert.equal(c.int('max', 5), 5);
  assert.equal(c.f64('exp'), 1000);
  assert.equal(c.f64('dot'), 0.5);
  assert.equal(c.f64('inf'), Infinity);
  assert.equal(c.f64('empty'), undefined, 'Number("") is 0, Rust refuses it');
  assert.equal(c.f64('hex'), undefined, 'Number("0x10") is 16, Rust refuses it');
  assert.equal(c.u64('bom'), undefined, 'U+FEFF is not whitespace to Rust');
  assert.equal(c.u64('ws'), 5n);
  assert.equal(c.f64('absent'), undefined);
  assert.equal(c.f64('absent', 92), 92);
  assert.equal(c.u64('neg', 3n), 3n);
});

test('bool, list, and the last value wins', () => {
  const c = new Config([
    ['a', 'YES'],
    ['b', ' off '],
    ['c', 'maybe'],
    ['a', '0'],
    ['l', ' 43, ,45 ,x'],
  ]);
  assert.equal(c.bool('a'), false);
  assert.equal(c.bool('b'), false);
  assert.equal(c.bool('c'), undefined);
  assert.equal(c.bool('c', true), true);
  assert.equal(c.get('a'), '0');
  assert.equal(c.str('missing', 'd'), 'd');
  assert.deepEqual(c.list('l'), ['43', '45', 'x']);
  assert.deepEqual(c.u64List('l'), [43n, 45n]);
  assert.deepEqual(c.u64List('missing'), []);
  assert.ok(c.has('a'));
  assert.ok(!c.has('z'));
  assert.equal(c.pairs().length, 5);
  assert.equal(Config.fromObject({ x: 1 }).u64('x'), 1n);
  for (const w of ['true', '1', 'yes', 'on', 'TRUE', 'On']) assert.equal(new Config([['k', w]]).bool('k'), true, w);
});

test('floats print as Rust prints them', () => {
  const cases = [
    [97, '97'],
    [97.5, '97.5'],
    [0.1, '0.1'],
    [-0, '-0'],
    [1e21, '1000000000000000000000'],
    [1e16, '10000000000000000'],
    [1.5e-7, '0.00000015'],
    [-2.5e-10, '-0.00000000025'],
    [Infinity, 'inf'],
    [-Infinity, '-inf'],
    [NaN, 'NaN'],
  ];
  for (const [x, want] of cases) assert.equal(fmtF64(x), want, String(x));
});
