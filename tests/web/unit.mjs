// Unit checks of the web app's pure modules, run by tests/test_web_unit.py with node.
import assert from 'node:assert/strict';
import { csv, num, signed } from '../../chalicelib/web/js/format.js';
import { differences } from '../../chalicelib/web/js/sections/compare.js';

// CSV: quoting, and formula injection neutralised for spreadsheets.
assert.equal(csv([['a', 'b,c', 'say "hi"']]), 'a,"b,c","say ""hi"""\r\n');
assert.equal(csv([['=HYPERLINK("http://x")', '+1+1', '@SUM(A1)', '-2.5', '-x']]),
  '"\'=HYPERLINK(""http://x"")",\'+1+1,\'@SUM(A1),-2.5,\'-x\r\n');
assert.equal(csv([[null, undefined, 0]]), ',,0\r\n');

// Numbers: n/a for missing, no negative zero, signs.
assert.equal(num(null), 'n/a');
assert.equal(num(-0.04, 1), '0.0');
assert.equal(num(-14.26, 1, 'LUFS'), '-14.3 LUFS');
assert.equal(signed(1.84, 1, 'LU'), '+1.8 LU');
assert.equal(signed(-2.1, 1), '-2.1');

// Compare: the headline sentence of B against A.
const a = { loudness: { integratedLufs: -10.0 }, dynamics: { psrDb: 9.0 }, peaks: { truePeakDbtp: -1.0, clipRegionsTotal: 1 }, comparison: { score: 80 } };
const b = { loudness: { integratedLufs: -8.2 }, dynamics: { psrDb: 6.9 }, peaks: { truePeakDbtp: -1.0, clipRegionsTotal: 4 }, comparison: { score: 80 } };
assert.equal(differences(a, b), '+1.8 LU, PSR -2.1 dB, 3 new clipped regions');
assert.equal(differences(a, a), 'No measurable difference.');
assert.equal(differences(b, a), '-1.8 LU, PSR +2.1 dB, 3 fewer clipped regions');
console.log('ok');
