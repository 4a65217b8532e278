/** JSON value types shared by documents and index expressions. */

/**
 * Any value `JSON.parse` can produce.
 *
 * @example
 * const v: JsonValue = { tags: ['a', 'b'], n: 1, ok: true, none: null };
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/**
 * A JSON object: the only shape a U1DB document's content may have.
 *
 * @example
 * const content: JsonObject = { subject: 'hi' };
 */
export type JsonObject = { [k: string]: JsonValue };

/**
 * True for a plain JSON object (not `null`, not an array).
 *
 * @example
 * isJsonObject({ a: 1 }); // true
 * isJsonObject([1]);      // false
 */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
