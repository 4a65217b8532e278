/**
 * U1DB index expressions (fact sheet §2d): the language of `create_index`, with the semantics of u1db 13.09's
 * `query_parser.py` as Soledad's SQLite backend stores its results, and the argument rules of `get_from_index`
 * and `get_range_from_index` (`_format_query`, `_format_range_query`).
 *
 * Grammar, as U1DB tokenizes it: `(`, `)` and `,` are the only delimiters; every other run of characters, trimmed,
 * is one name. A name followed by `(` is an operation, any other name is a dotted field path.
 *
 * ```
 * expression := field | op "(" argument ("," argument)* ")"
 * field      := segment ("." segment)*      e.g. `subject`, `headers.from`, `tags` (any chars but `(),`)
 * op         := lower | number | bool | split_words | is_null | combine
 * ```
 *
 * Evaluation yields the values a document contributes to an index column, as the text SQLite keeps in the
 * `document_fields.value TEXT` column: strings as they are, booleans (including `is_null`'s result) as `'1'`/`'0'`,
 * integers in decimal and other numbers as SQLite prints a REAL (`%!.15g`, e.g. `'9.2'`, `'1.0e+20'`). So a bare
 * field indexes numbers and booleans too (U1DB's `extract_field` returns them and the TEXT column converts them);
 * nulls inside a final list count for `is_null` but are never stored. Output is de-duplicated, which no query can
 * observe (results are grouped by document) and lets a store keep `(doc_id, field_name, value)` unique.
 *
 * Where JavaScript cannot mirror Python 2 exactly: after `JSON.parse`, `5.0` is the integer `5`, so it indexes as
 * `'5'` (U1DB: `'5.0'`) and `number()` accepts it; numbers beyond ±2^53 are treated as floats. Deliberately
 * stricter than U1DB (which only refuses a trailing `.`, and fails with a TypeError on a wrong argument count):
 * empty path segments, wrong arity, nesting deeper than 64 and `number()` widths above 1000 are parse errors.
 */
import { IndexDefinitionParseError, InvalidGlobbingError, InvalidValueForIndexError } from '../errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from './json.js';

/**
 * A parsed index expression.
 *
 * @example
 * const e = parseIndexExpression('lower(split_words(subject))');
 * e.text;                                  // 'lower(split_words(subject))' (stored as the field name)
 * e.evaluate({ subject: 'Hello  World' }); // ['hello', 'world']
 */
export interface IndexExpression {
  /** The expression exactly as given; U1DB stores this whole text as `document_fields.field_name`. */
  readonly text: string;
  /** The index values a document contributes for this expression; empty when the document is not indexed. */
  evaluate(content: JsonObject): string[];
}

// ---- evaluation tree ----

/** What flows between getters: JSON scalars, plus the nulls U1DB keeps from inside a final list. */
type Scalar = string | number | boolean | null;

type Node =
  | { readonly op: 'field'; readonly path: readonly string[] }
  | { readonly op: 'lower' | 'bool' | 'split_words' | 'is_null'; readonly arg: Node }
  | { readonly op: 'number'; readonly arg: Node; readonly width: number }
  | { readonly op: 'combine'; readonly args: readonly Node[] };

// Python 2's unicode whitespace (what `strip()` and `split()` use): JS `\s` without U+FEFF, plus U+001C–U+001F, U+0085.
const WS = '\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUN = new RegExp(`[${WS}]+`);
const WS_EDGES = new RegExp(`^[${WS}]+|[${WS}]+$`, 'g');

function evaluateNode(node: Node, doc: JsonObject): Scalar[] {
  switch (node.op) {
    case 'field':
      return extractField(doc, node.path, 0);
    case 'lower':
      return evaluateNode(node.arg, doc).filter(isString).map(pythonLower);
    case 'number':
      return evaluateNode(node.arg, doc)
        .filter((v): v is number => typeof v === 'number' && Number.isSafeInteger(v))
        .map((v) => formatInteger(v, node.width));
    case 'bool':
      return evaluateNode(node.arg, doc).filter((v): v is boolean => typeof v === 'boolean').map((v) => (v ? '1' : '0'));
    case 'split_words': {
      const words = new Set<string>();
      for (const v of evaluateNode(node.arg, doc).filter(isString)) {
        for (const w of v.replace(WS_EDGES, '').split(WS_RUN)) if (w !== '') words.add(w);
      }
      return [...words];
    }
    case 'is_null':
      return [evaluateNode(node.arg, doc).length === 0];
    case 'combine':
      return node.args.flatMap((arg) => evaluateNode(arg, doc));
  }
}

function isString(v: Scalar): v is string {
  return typeof v === 'string';
}

/** U1DB's `extract_field`: lists fan out mid-path; a final list yields its non-container items (nulls included). */
function extractField(value: JsonValue, path: readonly string[], i: number): Scalar[] {
  if (!isJsonObject(value)) return [];
  const key = path[i]!;
  // Own keys only: a path segment such as `constructor` must never reach Object.prototype.
  const v = Object.hasOwn(value, key) ? value[key] : undefined;
  if (v === undefined || v === null) return [];
  if (i < path.length - 1) {
    return Array.isArray(v) ? v.flatMap((item) => extractField(item, path, i + 1)) : extractField(v, path, i + 1);
  }
  if (Array.isArray(v)) return v.filter((item): item is Scalar => item === null || typeof item !== 'object');
  return typeof v === 'object' ? [] : [v];
}

/** Python 2 `unicode.lower()`: one code point to one, no context (so no final sigma, and İ becomes plain i). */
function pythonLower(s: string): string {
  return s.replace(/\u0130/g, 'i').replace(/\u03a3/g, '\u03c3').toLowerCase();
}

/** Python `'%0*d' % (width, v)`; a negative width means `%0-Nd`, i.e. left-justified with spaces. */
function formatInteger(v: number, width: number): string {
  if (width < 0) return String(v).padEnd(-width, ' ');
  const digits = String(Math.abs(v)); // a safe integer never prints with an exponent
  return v < 0 ? `-${digits.padStart(width - 1, '0')}` : digits.padStart(width, '0');
}

/** The text SQLite stores for a scalar bound into a TEXT-affinity column (Python binds bools as 1/0). */
function storedText(v: string | number | boolean): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? '1' : '0';
  return Number.isSafeInteger(v) ? String(v) : sqliteRealText(v);
}

/** SQLite's REAL to TEXT conversion, `%!.15g`: 15 significant digits, always a digit after the point. */
function sqliteRealText(x: number): string {
  const [mantissa = '', expText = '0'] = x.toExponential(14).split('e');
  const exp = Number(expText);
  if (exp < -4 || exp >= 15) {
    return `${trimFraction(mantissa)}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return trimFraction(x.toFixed(14 - exp));
}

function trimFraction(s: string): string {
  if (!s.includes('.')) return `${s}.0`;
  return s.replace(/0+$/, '').replace(/\.$/, '.0');
}

// ---- tokenizer and parser ----

interface Token {
  readonly text: string;
  /** Offset of the token in the expression, for error messages. */
  readonly at: number;
}

/** Deeper nesting is refused rather than risking the stack (U1DB's Python would hit its recursion limit). */
const MAX_DEPTH = 64;
/** `number(e, N)` widths beyond this are refused: the original would build keys of any length. */
const MAX_NUMBER_WIDTH = 1000;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let start = 0;
  const flushName = (end: number): void => {
    const raw = text.slice(start, end);
    const name = raw.replace(WS_EDGES, '');
    if (name !== '') tokens.push({ text: name, at: start + raw.indexOf(name) });
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '(' || c === ')' || c === ',') {
      flushName(i);
      tokens.push({ text: c, at: i });
      start = i + 1;
    }
  }
  flushName(text.length);
  return tokens;
}

function isDelimiter(token: Token): boolean {
  return token.text === '(' || token.text === ')' || token.text === ',';
}

function parseError(message: string): Error {
  return new IndexDefinitionParseError(`Invalid index expression: ${message}`);
}

/** A token quoted for a message: the expression is the caller's own text, but keep messages short. */
function show(token: Token): string {
  const text = token.text.length > 40 ? `${token.text.slice(0, 40)}…` : token.text;
  return `${JSON.stringify(text)} at offset ${token.at}`;
}

/** An argument before it is known whether the operation wants an expression or an integer. */
type Argument = Token | Node;

interface Operation {
  readonly minArgs: number;
  readonly maxArgs: number;
  build(args: readonly Argument[]): Node;
}

function unary(op: 'lower' | 'bool' | 'split_words' | 'is_null'): Operation {
  return { minArgs: 1, maxArgs: 1, build: ([arg]) => ({ op, arg: asExpression(arg!) }) };
}

// A Map, not an object literal, so that names such as `constructor` or `__proto__` are simply unknown.
const OPERATIONS: ReadonlyMap<string, Operation> = new Map<string, Operation>([
  ['lower', unary('lower')],
  ['bool', unary('bool')],
  ['split_words', unary('split_words')],
  ['is_null', unary('is_null')],
  ['number', { minArgs: 2, maxArgs: 2, build: ([arg, width]) => ({ op: 'number', arg: asExpression(arg!), width: asWidth(width!) }) }],
  ['combine', { minArgs: 1, maxArgs: Infinity, build: (args) => ({ op: 'combine', args: args.map(asExpression) }) }],
]);

function isToken(arg: Argument): arg is Token {
  return 'at' in arg;
}

function asExpression(arg: Argument): Node {
  if (!isToken(arg)) return arg;
  const path = arg.text.split('.');
  if (path.includes('')) {
    throw parseError(`field ${show(arg)} has an empty part (a leading, trailing or doubled ".")`);
  }
  return { op: 'field', path };
}

function asWidth(arg: Argument): number {
  if (!isToken(arg) || !/^[+-]?[0-9]+$/.test(arg.text)) {
    throw parseError(`the second argument of number() must be an integer${isToken(arg) ? `, got ${show(arg)}` : ''}`);
  }
  const width = Number(arg.text);
  if (Math.abs(width) > MAX_NUMBER_WIDTH) throw parseError(`number() width ${show(arg)} exceeds ${MAX_NUMBER_WIDTH}`);
  return width;
}

class Parser {
  private i = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  parse(): Node {
    const term = this.term(0);
    const extra = this.tokens[this.i];
    if (extra !== undefined) throw parseError(`unexpected ${show(extra)} after the end of the expression`);
    return asExpression(term);
  }

  private term(depth: number): Argument {
    const token = this.tokens[this.i++];
    if (token === undefined) throw parseError('unexpected end of the expression');
    if (isDelimiter(token)) throw parseError(`unexpected ${show(token)} where an expression should start`);
    return this.tokens[this.i]?.text === '(' ? this.call(token, depth) : token;
  }

  private call(name: Token, depth: number): Node {
    if (depth >= MAX_DEPTH) throw parseError(`operations nested more than ${MAX_DEPTH} deep`);
    const operation = OPERATIONS.get(name.text);
    if (operation === undefined) throw parseError(`unknown operation ${show(name)}`);
    this.i++; // the '(' seen by term()
    const args: Argument[] = [];
    for (;;) {
      args.push(this.term(depth + 1));
      const sep = this.tokens[this.i++];
      if (sep === undefined) throw parseError(`missing ")" to close ${name.text}( opened at offset ${name.at}`);
      if (sep.text === ')') break;
      if (sep.text !== ',') throw parseError(`unexpected ${show(sep)} in the arguments of ${name.text}()`);
    }
    if (args.length < operation.minArgs || args.length > operation.maxArgs) {
      const expected = operation.maxArgs === Infinity ? `at least ${operation.minArgs}` : String(operation.minArgs);
      throw parseError(`${name.text}() takes ${expected} argument(s), got ${args.length}`);
    }
    return operation.build(args);
  }
}

/**
 * Parse one U1DB index expression. Throws {@link IndexDefinitionParseError} for an empty expression, an unknown
 * operation, a wrong number or kind of arguments, unbalanced parentheses, trailing text, or a field path with an
 * empty part (`a.`, `.a`, `a..b`).
 *
 * @example
 * parseIndexExpression('combine(lower(title), number(year, 4))').evaluate({ title: 'Dune', year: 965 });
 * // ['dune', '0965']
 */
export function parseIndexExpression(text: string): IndexExpression {
  if (typeof text !== 'string') throw parseError('the expression must be a string');
  const root = new Parser(tokenize(text)).parse();
  return Object.freeze({
    text,
    evaluate(content: JsonObject): string[] {
      const out = new Set<string>();
      for (const v of evaluateNode(root, content)) if (v !== null) out.add(storedText(v));
      return [...out];
    },
  });
}

// ---- get_from_index / get_range_from_index arguments ----

/** How one column of a `get_from_index` query matches a stored index value. */
export type IndexValueMatch =
  /** A value without a trailing `*`: equal, case-sensitively. */
  | { readonly kind: 'exact'; readonly value: string }
  /** `"ab*"`: starts with `ab` (case-sensitive; every other character, `*`, `?` and `[` included, is literal). */
  | { readonly kind: 'prefix'; readonly prefix: string }
  /** `"*"`: any value (the document has a non-null value in this column). */
  | { readonly kind: 'any' };

/** One column of a range bound: start bounds are `gte`, end bounds `lte` or `lte-prefix`, either may be `any`. */
export type IndexRangeBound =
  | { readonly kind: 'any' }
  /** Start bound `"ab"` or `"ab*"`: value ≥ `ab`. */
  | { readonly kind: 'gte'; readonly value: string }
  /** End bound `"ab"`: value ≤ `ab`. */
  | { readonly kind: 'lte'; readonly value: string }
  /** End bound `"ab*"`: value < `ab` or value starts with `ab`, so every string starting with `ab` is included. */
  | { readonly kind: 'lte-prefix'; readonly prefix: string };

/** A checked `get_range_from_index` request; a `null` side is unbounded. Columns are constrained independently. */
export interface IndexRange {
  readonly start: readonly IndexRangeBound[] | null;
  readonly end: readonly IndexRangeBound[] | null;
}

/** One side of a range as callers pass it: one string (width 1 only), one string per column, or unbounded. */
export type IndexRangeInput = string | readonly string[] | null | undefined;

/** Walk values with U1DB's wildcard rule: after the first `*`-terminated value, only `"*"` may follow. */
function classify(width: number, values: unknown, what: string): Array<{ value: string; glob: 'none' | 'any' | 'prefix' }> {
  if (!Array.isArray(values) || values.length !== width) {
    const got = Array.isArray(values) ? values.length : 'no list of';
    throw new InvalidValueForIndexError(`${what}: this index has ${width} column(s), got ${got} value(s)`);
  }
  let afterWildcard = false;
  return values.map((value: unknown, i) => {
    if (typeof value !== 'string') throw new InvalidValueForIndexError(`${what}: value ${i + 1} is not a string`);
    if (!value.endsWith('*')) {
      if (afterWildcard) throw new InvalidGlobbingError(`${what}: value ${i + 1} follows a wildcard but is not "*"`);
      return { value, glob: 'none' as const };
    }
    if (value !== '*' && afterWildcard) {
      throw new InvalidGlobbingError(`${what}: value ${i + 1} is a prefix glob after a wildcard; only "*" may follow`);
    }
    afterWildcard = true;
    return value === '*' ? { value, glob: 'any' as const } : { value: value.replace(/\*+$/, ''), glob: 'prefix' as const };
  });
}

/**
 * Check the values of `get_from_index(name, ...values)` against an index of `width` columns (U1DB's
 * `_format_query` rules). Throws {@link InvalidValueForIndexError} when the count differs from `width` and
 * {@link InvalidGlobbingError} when anything but `"*"` follows a value ending in `*`. Only a trailing `*` is a
 * wildcard (all trailing stars are removed from a prefix); a `*` elsewhere is a literal character.
 *
 * @example
 * checkIndexQueryValues(2, ['v1', 'ab*']); // [{kind:'exact', value:'v1'}, {kind:'prefix', prefix:'ab'}]
 * checkIndexQueryValues(2, ['*', 'v2']);   // throws InvalidGlobbingError
 */
export function checkIndexQueryValues(width: number, values: readonly string[]): IndexValueMatch[] {
  return classify(width, values, 'get_from_index').map(({ value, glob }): IndexValueMatch => {
    if (glob === 'any') return { kind: 'any' };
    return glob === 'prefix' ? { kind: 'prefix', prefix: value } : { kind: 'exact', value };
  });
}

/**
 * Check the bounds of `get_range_from_index(name, start, end)` (U1DB's `_format_range_query` rules). Each side may
 * be a single string (for a one-column index), an array with one value per column, or `null`/`undefined`; like
 * U1DB (which tests the bound's truthiness) an empty string or empty array is also unbounded. Wildcards follow the
 * {@link checkIndexQueryValues} rules per side. Bounds are inclusive and apply to each column independently, as
 * in the SQLite backend (not a lexicographic comparison of whole rows).
 *
 * @example
 * checkIndexRangeValues(1, 'cat*', 'zap*');
 * // { start: [{kind:'gte', value:'cat'}], end: [{kind:'lte-prefix', prefix:'zap'}] }
 */
export function checkIndexRangeValues(width: number, start: IndexRangeInput, end: IndexRangeInput): IndexRange {
  return { start: rangeSide(width, start, 'start'), end: rangeSide(width, end, 'end') };
}

function rangeSide(width: number, input: IndexRangeInput, side: 'start' | 'end'): IndexRangeBound[] | null {
  if (input === null || input === undefined || input === '' || (Array.isArray(input) && input.length === 0)) return null;
  const values = typeof input === 'string' ? [input] : input;
  return classify(width, values, `get_range_from_index ${side}`).map(({ value, glob }): IndexRangeBound => {
    if (glob === 'any') return { kind: 'any' };
    if (side === 'start') return { kind: 'gte', value };
    return glob === 'prefix' ? { kind: 'lte-prefix', prefix: value } : { kind: 'lte', value };
  });
}

/**
 * Order index values as SQLite's BINARY collation orders their UTF-8 bytes, i.e. by code point (plain `<` on JS
 * strings compares UTF-16 units and misplaces characters above U+FFFF).
 *
 * @example
 * ['b', '😀', '\uffff', 'a'].sort(compareIndexValues); // ['a', 'b', '\uffff', '😀']
 */
export function compareIndexValues(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Surrogates (U+D800–DFFF) start code points above U+FFFF, so they sort after U+E000–U+FFFF. */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

function matchesOne(value: string, match: IndexValueMatch | IndexRangeBound): boolean {
  switch (match.kind) {
    case 'any':
      return true;
    case 'exact':
      return value === match.value;
    case 'prefix':
      return value.startsWith(match.prefix);
    case 'gte':
      return compareIndexValues(value, match.value) >= 0;
    case 'lte':
      return compareIndexValues(value, match.value) <= 0;
    case 'lte-prefix':
      return compareIndexValues(value, match.prefix) < 0 || value.startsWith(match.prefix);
  }
}

/**
 * Whether a document, given as its values per index column (one {@link IndexExpression.evaluate} result per
 * column), is returned by a checked `get_from_index` query: every column needs some value that matches.
 *
 * @example
 * matchesIndexQuery([['v1'], ['x2', 'y2']], checkIndexQueryValues(2, ['v1', 'y*'])); // true
 */
export function matchesIndexQuery(columns: readonly (readonly string[])[], query: readonly IndexValueMatch[]): boolean {
  return query.length === columns.length && query.every((m, i) => columns[i]!.some((v) => matchesOne(v, m)));
}

/**
 * Whether a document (values per index column) is returned by a checked range: in every column some single value
 * satisfies both that column's start and end bound.
 *
 * @example
 * matchesIndexRange([['value22']], checkIndexRangeValues(1, 'value2*', null)); // true
 */
export function matchesIndexRange(columns: readonly (readonly string[])[], range: IndexRange): boolean {
  return columns.every((values, i) => values.some((v) =>
    (range.start === null || matchesOne(v, range.start[i]!)) && (range.end === null || matchesOne(v, range.end[i]!))));
}
