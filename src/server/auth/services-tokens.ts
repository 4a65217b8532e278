/**
 * The Services API tokens file (fact sheet §5a): one `service:token` per line. Deviation 3: blank lines and
 * `#` comments are ignored (the original crashed on a blank line).
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../common/errors.js';
import { constantTimeEqual } from '../backends/common.js';

/** Service name → token. */
export type ServicesTokens = ReadonlyMap<string, string>;

/**
 * Parse the file's text. A non-blank, non-comment line without `:` (or with an empty side) is a
 * {@link ConfigError} naming the line.
 *
 * @example
 * parseServicesTokens('# local services\nincoming:Zm9yYSB0ZW1lciEK\n'); // Map { 'incoming' => 'Zm9yYSB0ZW1lciEK' }
 */
export function parseServicesTokens(text: string, fileName = 'services_tokens_file'): Map<string, string> {
  const out = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const sep = line.indexOf(':');
    if (sep <= 0 || sep === line.length - 1) {
      throw new ConfigError(`services_tokens_file: ${fileName} line ${i + 1} is not "service:token"`);
    }
    out.set(line.slice(0, sep), line.slice(sep + 1));
  });
  return out;
}

/**
 * Read and parse the tokens file; a missing file means no service may authenticate.
 *
 * @example
 * const tokens = await readServicesTokens(config.servicesTokensFile);
 */
export async function readServicesTokens(file: string): Promise<{
  /** Token by service name. */
  tokens: Map<string, string>;
  /** False when the file does not exist (then no service may deliver). */
  found: boolean;
}> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { tokens: new Map(), found: false };
    throw new ConfigError(`services_tokens_file: cannot read ${file} (${code ?? 'error'})`, { cause: err });
  }
  return { tokens: parseServicesTokens(text, file), found: true };
}

/**
 * Whether `token` is the token of `service`, comparing digests in constant time (an unknown service costs the
 * same comparison).
 *
 * @example
 * checkServiceToken(tokens, 'incoming', presented);
 */
export function checkServiceToken(tokens: ServicesTokens, service: string, token: string): boolean {
  const expected = tokens.get(service);
  const same = constantTimeEqual(expected ?? '\u0000no-such-service', token);
  return expected !== undefined && same;
}
