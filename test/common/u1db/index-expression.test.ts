import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { IndexDefinitionParseError, InvalidGlobbingError, InvalidValueForIndexError } from '../../../src/common/errors.js';
import {
  checkIndexQueryValues,
  checkIndexRangeValues,
  compareIndexValues,
  matchesIndexQuery,
  matchesIndexRange,
  parseIndexExpression,
} from '../../../src/common/u1db/index-expression.js';
import type { JsonObject } from '../../../src/common/u1db/json.js';

function ev(expression: string, content: JsonObject): string[] {
  return parseIndexExpression(expression).evaluate(content);
}

/** Compare ignoring order, for operations whose output order U1DB leaves undefined. */
function sorted(values: string[]): string[] {
  return [...values].sort();
}

function assertParseError(expression: string, messagePart?: string): void {
  assert.throws(() => parseIndexExpression(expression), (err: unknown) => {
    assert.ok(err instanceof IndexDefinitionParseError, `expected IndexDefinitionParseError for ${JSON.stringify(expression)}, got ${String(err)}`);
    assert.equal(err.code, 'INDEX_DEFINITION_PARSE');
    if (messagePart !== undefined) assert.match(err.message, new RegExp(messagePart.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    return true;
  });
}

describe('field paths', () => {
  it('reads a top-level string and keeps the expression text', () => {
    const e = parseIndexExpression('key');
    assert.equal(e.text, 'key');
    assert.deepEqual(e.evaluate({ key: 'value' }), ['value']);
  });

  it('walks dotted paths into objects', () => {
    assert.deepEqual(ev('sub.doc', { sub: { doc: 'underneath' } }), ['underneath']);
    assert.deepEqual(ev('a.b.c', { a: { b: { c: 'deep' } } }), ['deep']);
  });

  it('yields nothing for missing fields, nulls, objects and paths through scalars', () => {
    assert.deepEqual(ev('key', {}), []);
    assert.deepEqual(ev('key', { key: null }), []);
    assert.deepEqual(ev('key', { key: { baz: 'bar' } }), []);
    assert.deepEqual(ev('sub.foo', { sub: { doc: 'x' } }), []);
    assert.deepEqual(ev('sub.foo.bar.baz', { sub: { doc: 'x' } }), []);
    assert.deepEqual(ev('foo.baz', { foo: 'bar' }), []);
  });

  it('a final list contributes its scalar items and skips nested lists and objects', () => {
    assert.deepEqual(ev('name', { name: ['foo', 'bar'] }), ['foo', 'bar']);
    assert.deepEqual(ev('foo', { foo: ['bar', ['baa'], 'zap', { bing: 9 }] }), ['bar', 'zap']);
    assert.deepEqual(ev('foo', { foo: [{ zap: 'bar' }] }), []);
  });

  it('fans out through lists in the middle of a path', () => {
    assert.deepEqual(ev('foo.zap', { foo: [{ zap: 'bar' }, { zap: 'baz' }] }), ['bar', 'baz']);
    assert.deepEqual(ev('foo.zap', { foo: ['zap', 'baz'] }), []);
    assert.deepEqual(
      ev('foo.zap.qux', { foo: [{ zap: [{ qux: 'fnord' }, { qux: 'zombo' }] }, { zap: 'baz' }] }),
      ['fnord', 'zombo'],
    );
    assert.deepEqual(ev('a.b', { a: [{ b: ['x', 'y'] }, 'skip', [{ b: 'nested-list-not-flattened' }], { b: 'z' }] }), ['x', 'y', 'z']);
  });

  it('indexes non-string leaves as the text SQLite stores for them', () => {
    assert.deepEqual(ev('n', { n: 9 }), ['9']);
    assert.deepEqual(ev('n', { n: -12 }), ['-12']);
    assert.deepEqual(ev('n', { n: 9.2 }), ['9.2']);
    assert.deepEqual(ev('n', { n: 1 / 3 }), ['0.333333333333333']);
    assert.deepEqual(ev('n', { n: 1e20 }), ['1.0e+20']);
    assert.deepEqual(ev('n', { n: 1e-5 }), ['1.0e-05']);
    assert.deepEqual(ev('n', { n: 123456789012345.5 }), ['123456789012346.0']);
    assert.deepEqual(ev('b', { b: true }), ['1']);
    assert.deepEqual(ev('b', { b: false }), ['0']);
    assert.deepEqual(ev('l', { l: ['x', 7, null, false] }), ['x', '7', '0']);
  });

  it('de-duplicates the values of one document', () => {
    assert.deepEqual(ev('l', { l: ['a', 'b', 'a'] }), ['a', 'b']);
    assert.deepEqual(ev('combine(x, y)', { x: 'same', y: 'same' }), ['same']);
  });

  it('reads only own keys, never the prototype', () => {
    assert.deepEqual(ev('constructor', {}), []);
    assert.deepEqual(ev('toString', {}), []);
    assert.deepEqual(ev('a.constructor.name', { a: {} }), []);
    assert.deepEqual(ev('__proto__', JSON.parse('{"__proto__": "own"}') as JsonObject), ['own']);
  });

  it('accepts field names with any characters except delimiters, trimmed', () => {
    assert.deepEqual(ev('my-field_2.x@y', { 'my-field_2': { 'x@y': 'v' } }), ['v']);
    assert.deepEqual(ev('  spaced name  ', { 'spaced name': 'v' }), ['v']);
    assert.deepEqual(ev('ünï.cödé', { ünï: { cödé: 'v' } }), ['v']);
  });
});

describe('lower()', () => {
  it('lowercases strings and drops everything else', () => {
    assert.deepEqual(ev('lower(name)', { name: 'Foo' }), ['foo']);
    assert.deepEqual(ev('lower(name)', { name: ['fOo', 9, 9.2, true, 'bAr'] }), ['foo', 'bar']);
    assert.deepEqual(ev('lower(name)', { name: 9 }), []);
    assert.deepEqual(ev('lower(name)', {}), []);
  });

  it('maps one code point to one, like Python 2 (no final sigma, no combining dot)', () => {
    assert.deepEqual(ev('lower(w)', { w: 'ΟΔΟΣ' }), ['οδοσ']);
    assert.deepEqual(ev('lower(w)', { w: 'İSTANBUL' }), ['istanbul']);
  });
});

describe('number()', () => {
  it('zero-pads integers', () => {
    assert.deepEqual(ev('number(foo, 5)', { foo: 12 }), ['00012']);
    assert.deepEqual(ev('number(foo, 5)', { foo: 123456 }), ['123456']);
    assert.deepEqual(ev('number(foo, 5)', { foo: [9, 235] }), ['00009', '00235']);
    assert.deepEqual(ev('number(foo, 0)', { foo: 7 }), ['7']);
    assert.deepEqual(ev('number(foo, +3)', { foo: 7 }), ['007']);
  });

  it('formats negative numbers and widths like Python %0*d', () => {
    assert.deepEqual(ev('number(foo, 5)', { foo: -3 }), ['-0003']);
    assert.deepEqual(ev('number(foo, 1)', { foo: -3 }), ['-3']);
    assert.deepEqual(ev('number(foo, -5)', { foo: 12 }), ['12   ']);
    assert.deepEqual(ev('number(foo, 3)', { foo: -0 }), ['000']);
  });

  it('drops strings, floats, booleans and containers', () => {
    assert.deepEqual(ev('number(foo, 5)', { foo: 'this is not a maigret painting' }), []);
    assert.deepEqual(ev('number(foo, 5)', { foo: 9.2 }), []);
    assert.deepEqual(ev('number(foo, 5)', { foo: true }), []);
    assert.deepEqual(ev('number(foo, 5)', { foo: [83, 9.2, true, 'x', [29], { a: 1 }, 73] }), ['00083', '00073']);
    assert.deepEqual(ev('number(foo, 5)', { foo: 2 ** 60 }), []);
  });
});

describe('bool()', () => {
  it("stores booleans as '1' and '0' and drops everything else", () => {
    assert.deepEqual(ev('bool(foo)', { foo: true }), ['1']);
    assert.deepEqual(ev('bool(foo)', { foo: false }), ['0']);
    assert.deepEqual(ev('bool(foo)', { foo: 42 }), []);
    assert.deepEqual(ev('bool(foo)', { foo: 'true' }), []);
    assert.deepEqual(ev('bool(foo)', { foo: [true, 1, false] }), ['1', '0']);
  });
});

describe('split_words()', () => {
  it('splits on runs of whitespace and trims', () => {
    assert.deepEqual(sorted(ev('split_words(name)', { name: 'foo bar' })), ['bar', 'foo']);
    assert.deepEqual(sorted(ev('split_words(name)', { name: ' foo  bar \t\nbaz ' })), ['bar', 'baz', 'foo']);
    assert.deepEqual(sorted(ev('split_words(name)', { name: 'a\u3000b\u00a0c\x1cd' })), ['a', 'b', 'c', 'd']);
  });

  it('de-duplicates words across values and drops non-strings', () => {
    assert.deepEqual(ev('split_words(name)', { name: 'foo foo' }), ['foo']);
    assert.deepEqual(ev('split_words(name)', { name: ['bar', 'bar', 'bar'] }), ['bar']);
    assert.deepEqual(sorted(ev('split_words(name)', { name: ['foo baz', 9, true, ['baa'], 'bar sux'] })), ['bar', 'baz', 'foo', 'sux']);
    assert.deepEqual(ev('split_words(name)', { name: 9 }), []);
    assert.deepEqual(ev('split_words(name)', { name: '   ' }), []);
  });
});

describe('is_null()', () => {
  it("is '1' when the inner expression yields nothing, else '0'", () => {
    assert.deepEqual(ev('is_null(key)', {}), ['1']);
    assert.deepEqual(ev('is_null(key)', { key: null }), ['1']);
    assert.deepEqual(ev('is_null(key)', { key: { nested: 1 } }), ['1']);
    assert.deepEqual(ev('is_null(key)', { key: [] }), ['1']);
    assert.deepEqual(ev('is_null(key)', { key: 'x' }), ['0']);
    assert.deepEqual(ev('is_null(key)', { key: 0 }), ['0']);
    assert.deepEqual(ev('is_null(key)', { key: false }), ['0']);
  });

  it('counts a null inside a final list as a value (U1DB keeps it, though it is never stored)', () => {
    assert.deepEqual(ev('is_null(key)', { key: [null] }), ['0']);
    assert.deepEqual(ev('key', { key: [null] }), []);
  });
});

describe('combine() and nesting', () => {
  it('concatenates the values of its arguments', () => {
    assert.deepEqual(ev('combine(foo, bar)', { foo: 'value1', bar: 'value2' }), ['value1', 'value2']);
    assert.deepEqual(ev('combine(foo)', { foo: 'only' }), ['only']);
    assert.deepEqual(ev('combine(foo, bar)', { bar: 'b' }), ['b']);
  });

  it('evaluates a complex combination', () => {
    const e = parseIndexExpression('combine(number(foo, 5), lower(bar), split_words(baz))');
    assert.deepEqual(sorted(e.evaluate({ foo: 12, bar: 'ALLCAPS', baz: 'qux nox' })), ['00012', 'allcaps', 'nox', 'qux']);
    assert.deepEqual(e.evaluate({ foo: 'not a number', bar: 'something' }), ['something']);
  });

  it('passes raw values between nested operations', () => {
    assert.deepEqual(sorted(ev('lower(split_words(a.b))', { a: { b: 'Hello WORLD' } })), ['hello', 'world']);
    assert.deepEqual(ev('bool(is_null(x))', {}), ['1']);
    assert.deepEqual(ev('lower(is_null(x))', {}), []);
    assert.deepEqual(ev('number(is_null(x), 3)', {}), []);
    assert.deepEqual(ev('is_null(lower(n))', { n: 5 }), ['1']);
  });
});

describe('parsing', () => {
  it('tolerates whitespace around names and delimiters and keeps the text as given', () => {
    for (const text of ['  lower(a)', 'lower(a)  ', 'lower  (a)', 'lower(  a)', 'lower(a  )', 'combine(a  , b  , c)', 'combine(a,  b,  c)', 'number(a,  5)', 'number(a  , 5)']) {
      const e = parseIndexExpression(text);
      assert.equal(e.text, text);
      assert.ok(e.evaluate({ a: 'A', b: 'b', c: 'c' }).length > 0 || text.startsWith('number'), text);
    }
    assert.deepEqual(ev('number(a  , 5)', { a: 3 }), ['00003']);
  });

  it('allows an operation name as a plain field', () => {
    assert.deepEqual(ev('lower', { lower: 'x' }), ['x']);
    assert.deepEqual(ev('lower(number)', { number: 'X' }), ['x']);
  });

  const bad: Array<[string, string]> = [
    ['', 'unexpected end'],
    ['   ', 'unexpected end'],
    ['a.', 'empty part'],
    ['.a', 'empty part'],
    ['a..b', 'empty part'],
    ['lower(a.)', 'empty part'],
    ['lower(a', 'missing ")"'],
    ['lower(a,', 'unexpected end'],
    ['lower(ab))', 'after the end'],
    ['lower(ab)adsf', 'after the end'],
    ['(ab)', 'where an expression should start'],
    ['    (a) ', 'where an expression should start'],
    [')', 'where an expression should start'],
    ['a, b', 'after the end'],
    ['lower()', 'where an expression should start'],
    ['combine(a,,b)', 'where an expression should start'],
    ['unknown_operation(field1)', 'unknown operation'],
    ['mapping(whatever)', 'unknown operation'],
    ['a.b(c)', 'unknown operation'],
    ['constructor(a)', 'unknown operation'],
    ['__proto__(a)', 'unknown operation'],
    ['lower(a, b)', 'takes 1 argument'],
    ['is_null(a, b)', 'takes 1 argument'],
    ['number(a)', 'takes 2 argument'],
    ['number(a, 5, 6)', 'takes 2 argument'],
    ['number(field, fnord)', 'must be an integer'],
    ['number(field, 5.5)', 'must be an integer'],
    ['number(field, lower(x))', 'must be an integer'],
    ['number(field, 1001)', 'exceeds'],
    ['number(a., 5)', 'empty part'],
    ['combine(lower(x)x,foo)', 'in the arguments of combine()'],
    ['(@#@cc   @#!*DFJSXV(()jccd', 'where an expression should start'],
    ['lower(a))(', 'after the end'],
  ];
  for (const [text, message] of bad) {
    it(`refuses ${JSON.stringify(text)}`, () => assertParseError(text, message));
  }

  it('names the offending token and its offset', () => {
    assertParseError('lower(ab)adsf', '"adsf" at offset 9');
  });

  it('refuses very deep nesting with a parse error instead of overflowing the stack', () => {
    const deep = `${'lower('.repeat(100_000)}a${')'.repeat(100_000)}`;
    assertParseError(deep, 'nested');
    const ok = `${'lower('.repeat(60)}a${')'.repeat(60)}`;
    assert.deepEqual(ev(ok, { a: 'X' }), ['x']);
  });

  it('refuses a non-string expression', () => {
    assertParseError(42 as unknown as string, 'must be a string');
  });

  it('only ever throws IndexDefinitionParseError, and parsed expressions evaluate to strings', () => {
    const unit = fc.constantFrom('(', ')', ',', '.', ' ', 'a', 'b', '_', '-', '5', '*', 'lower', 'number', 'bool',
      'split_words', 'is_null', 'combine', 'constructor', '\t', 'é', '😀');
    const doc = fc.dictionary(fc.constantFrom('a', 'b', 'lower', '5', 'a b'), fc.jsonValue({ maxDepth: 3 }));
    fc.assert(fc.property(fc.oneof(fc.string({ unit, maxLength: 30 }), fc.string()), doc, (text, content) => {
      let e;
      try {
        e = parseIndexExpression(text);
      } catch (err) {
        assert.ok(err instanceof IndexDefinitionParseError, `unexpected ${String(err)} for ${JSON.stringify(text)}`);
        return;
      }
      const values = e.evaluate(content as JsonObject);
      assert.ok(Array.isArray(values) && values.every((v) => typeof v === 'string'));
      assert.equal(new Set(values).size, values.length);
    }), { numRuns: 3000 });
  });
});

describe('get_from_index values', () => {
  it('classifies exact, prefix and any values', () => {
    assert.deepEqual(checkIndexQueryValues(1, ['value']), [{ kind: 'exact', value: 'value' }]);
    assert.deepEqual(checkIndexQueryValues(1, ['']), [{ kind: 'exact', value: '' }]);
    assert.deepEqual(checkIndexQueryValues(2, ['v1', 'v*']), [{ kind: 'exact', value: 'v1' }, { kind: 'prefix', prefix: 'v' }]);
    assert.deepEqual(checkIndexQueryValues(2, ['v1', '*']), [{ kind: 'exact', value: 'v1' }, { kind: 'any' }]);
    assert.deepEqual(checkIndexQueryValues(3, ['v*', '*', '*']), [{ kind: 'prefix', prefix: 'v' }, { kind: 'any' }, { kind: 'any' }]);
    assert.deepEqual(checkIndexQueryValues(2, ['*', '*']), [{ kind: 'any' }, { kind: 'any' }]);
  });

  it('treats only a trailing * as a wildcard', () => {
    assert.deepEqual(checkIndexQueryValues(1, ['a*b']), [{ kind: 'exact', value: 'a*b' }]);
    assert.deepEqual(checkIndexQueryValues(1, ['a*b*']), [{ kind: 'prefix', prefix: 'a*b' }]);
    assert.deepEqual(checkIndexQueryValues(1, ['ab**']), [{ kind: 'prefix', prefix: 'ab' }]);
    assert.deepEqual(checkIndexQueryValues(2, ['v1', 'a*b']), [{ kind: 'exact', value: 'v1' }, { kind: 'exact', value: 'a*b' }]);
  });

  it('requires exactly one value per column', () => {
    for (const values of [[], ['v1'], ['v1', 'v2', 'v3']]) {
      assert.throws(() => checkIndexQueryValues(2, values), InvalidValueForIndexError);
    }
    assert.throws(() => checkIndexQueryValues(1, [5 as unknown as string]), InvalidValueForIndexError);
  });

  it('allows only "*" after a wildcard', () => {
    for (const values of [['*', 'v2'], ['*', 'v*'], ['v*', 'v2'], ['v*', 'v*'], ['*', '**'], ['v*', '*', 'x']]) {
      assert.throws(() => checkIndexQueryValues(values.length, values), InvalidGlobbingError, JSON.stringify(values));
    }
  });

  it('does not echo the queried values in error messages', () => {
    assert.throws(() => checkIndexQueryValues(2, ['secret*', 'hidden']), (err: Error) => !/secret|hidden/.test(err.message));
  });

  it('matches documents like U1DB: case-sensitive, literal SQL wildcards, any non-null value for "*"', () => {
    const docs: JsonObject[] = [{ key: 'va%lue' }, { key: 'value' }, { key: 'va_lue' }, { key: '' }, { key: null }, {}];
    const hits = (value: string): number[] => {
      const e = parseIndexExpression('key');
      const q = checkIndexQueryValues(1, [value]);
      return docs.flatMap((d, i) => (matchesIndexQuery([e.evaluate(d)], q) ? [i] : []));
    };
    assert.deepEqual(hits('va%*'), [0]);
    assert.deepEqual(hits('va_*'), [2]);
    assert.deepEqual(hits('v*'), [0, 1, 2]);
    assert.deepEqual(hits('V*'), []);
    assert.deepEqual(hits(''), [3]);
    assert.deepEqual(hits('*'), [0, 1, 2, 3]);
    assert.deepEqual(hits('value'), [1]);
  });

  it('matches each column independently over the values a document contributes', () => {
    const e = ['k1', 'k2'].map((t) => parseIndexExpression(t));
    const cols = (d: JsonObject): string[][] => e.map((x) => x.evaluate(d));
    const q = checkIndexQueryValues(2, ['v1', 'v*']);
    assert.equal(matchesIndexQuery(cols({ k1: 'v1', k2: ['ZZ', 'v3'] }), q), true);
    assert.equal(matchesIndexQuery(cols({ k1: 'v1', k2: 'ZZ' }), q), false);
    assert.equal(matchesIndexQuery(cols({ k1: 'NN', k2: 'v2' }), q), false);
    assert.equal(matchesIndexQuery(cols({ k1: 'v1' }), checkIndexQueryValues(2, ['v1', '*'])), false);
  });
});

describe('get_range_from_index values', () => {
  it('turns bounds into inclusive per-column constraints', () => {
    assert.deepEqual(checkIndexRangeValues(1, 'a', 'b'), { start: [{ kind: 'gte', value: 'a' }], end: [{ kind: 'lte', value: 'b' }] });
    assert.deepEqual(checkIndexRangeValues(1, 'cat*', 'zap*'), {
      start: [{ kind: 'gte', value: 'cat' }],
      end: [{ kind: 'lte-prefix', prefix: 'zap' }],
    });
    assert.deepEqual(checkIndexRangeValues(2, ['value2', '*'], ['value2', 'v*']), {
      start: [{ kind: 'gte', value: 'value2' }, { kind: 'any' }],
      end: [{ kind: 'lte', value: 'value2' }, { kind: 'lte-prefix', prefix: 'v' }],
    });
  });

  it('treats null, undefined, "" and [] as unbounded, as U1DB does', () => {
    for (const none of [null, undefined, '', []]) {
      assert.deepEqual(checkIndexRangeValues(2, none, none), { start: null, end: null });
    }
    assert.deepEqual(checkIndexRangeValues(1, [''], null), { start: [{ kind: 'gte', value: '' }], end: null });
  });

  it('requires one value per column on each bounded side', () => {
    assert.throws(() => checkIndexRangeValues(2, 'v1', null), InvalidValueForIndexError);
    assert.throws(() => checkIndexRangeValues(2, null, ['v1', 'v2', 'v3']), InvalidValueForIndexError);
    assert.throws(() => checkIndexRangeValues(1, ['a', 'b'], 'c'), InvalidValueForIndexError);
  });

  it('applies the wildcard rule to both sides', () => {
    for (const values of [['*', 'v2'], ['*', 'v*'], ['v*', 'x']]) {
      assert.throws(() => checkIndexRangeValues(2, values, null), InvalidGlobbingError);
      assert.throws(() => checkIndexRangeValues(2, null, values), InvalidGlobbingError);
    }
  });

  const key = parseIndexExpression('key');
  const key2 = parseIndexExpression('key2');
  const inRange = (docs: JsonObject[], start: string | string[] | null, end: string | string[] | null): number[] => {
    const width = Array.isArray(start) ? start.length : Array.isArray(end) ? end.length : 1;
    const exprs = width === 1 ? [key] : [key, key2];
    const range = checkIndexRangeValues(width, start, end);
    return docs.flatMap((d, i) => (matchesIndexRange(exprs.map((x) => x.evaluate(d)), range) ? [i] : []));
  };

  it('selects single-column ranges like U1DB, globs included', () => {
    const docs: JsonObject[] = ['value4', 'value23', 'value2', 'value22', 'value1'].map((v) => ({ key: v }));
    assert.deepEqual(inRange(docs, 'value2*', null), [0, 1, 2, 3]);
    assert.deepEqual(inRange(docs, null, 'value2*'), [1, 2, 3, 4]);
    assert.deepEqual(inRange(docs, null, 'value2'), [2, 4]);
    assert.deepEqual(inRange(docs, 'value2', 'value3'), [1, 2, 3]);
    const words: JsonObject[] = ['a', 'boo3', 'catalyst', 'whaever', 'zerg'].map((v) => ({ key: v }));
    assert.deepEqual(inRange(words, 'cat*', 'zap*'), [2, 3]);
  });

  it('constrains each column on its own, not lexicographically', () => {
    const docs: JsonObject[] = [
      { key: 'value3', key2: 'value4' },
      { key: 'value2', key2: 'value3' },
      { key: 'value2', key2: 'value2' },
      { key: 'value1', key2: 'value1' },
      { key: 'value3', key2: 'value1' },
    ];
    assert.deepEqual(inRange(docs, ['value2', 'value2'], ['value2', 'value3']), [1, 2]);
    assert.deepEqual(inRange(docs, ['value2', 'value3'], null), [0, 1]);
    assert.deepEqual(inRange(docs, null, ['value2', 'value3']), [1, 2, 3]);
    assert.deepEqual(inRange(docs, ['value2', '*'], null), [0, 1, 2, 4]);
  });

  it('needs one single value to satisfy both bounds of a column', () => {
    const range = checkIndexRangeValues(1, 'm', 'n');
    assert.equal(matchesIndexRange([['a', 'z']], range), false);
    assert.equal(matchesIndexRange([['a', 'mm']], range), true);
  });
});

describe('compareIndexValues', () => {
  it('orders by code point, like SQLite compares UTF-8', () => {
    assert.deepEqual(['b', '😀', '\uffff', 'a', 'ab', ''].sort(compareIndexValues), ['', 'a', 'ab', 'b', '\uffff', '😀']);
    assert.ok(compareIndexValues('\ud800\udc00', '\ue000') > 0);
    assert.ok(compareIndexValues('A', 'a') < 0);
    assert.equal(compareIndexValues('same', 'same'), 0);
  });
});
