/**
 * How the `soledad` command turns a failure into one line and an exit code.
 *
 * The line is `<ErrorName>: <what happened> — <what to do>`. Catalogued errors never carry secrets in their
 * messages (see `src/common/errors.ts`), and the CLI builds its own messages from file names and ids only, so the
 * line is safe to print. Stacks appear only with `--debug`.
 */
import { SoledadError } from '../../common/errors.js';

/**
 * The command line was wrong (unknown option, bad value, missing profile argument…): exit code 2.
 *
 * @example
 * throw new UsageError("--uuid: expected letters, digits, '-' or '_'");
 */
export class UsageError extends Error {
  constructor(message: string, options?: { hint?: string }) {
    super(message);
    this.name = 'UsageError';
    if (options?.hint !== undefined) this.hint = options.hint;
  }

  /** What to do about it, when the thrower knows better than the generic table. */
  hint?: string;
}

/**
 * A failure the CLI itself detects at run time (no profile, unreadable file, cancelled prompt): exit code 1.
 *
 * @example
 * throw new CliError('ProfileNotFoundError', "no profile 'work'", "run 'soledad init' first");
 */
export class CliError extends Error {
  /** What to do about it. */
  readonly hint: string | undefined;

  constructor(name: string, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = name;
    this.hint = hint;
  }
}

/** For each catalogued error name: a short lowercase statement and the next step. */
const ADVICE: Record<string, { what?: string; todo: string }> = {
  WrongPassphraseError: { what: 'wrong passphrase', todo: "try again or use 'soledad recover'" },
  InvalidAuthTokenError: {
    what: 'the server refused the token',
    todo: "get a new token from your provider (soledad-server token add) and run 'soledad init --force …'",
  },
  UnauthorizedError: { what: 'the server refused the token', todo: "get a new token and run 'soledad init --force …'" },
  ForbiddenError: { todo: 'check that the token belongs to this uuid' },
  ConnectionError: {
    todo: 'check the server URL, the network, and --ca for a self-signed certificate; local commands work offline',
  },
  UnavailableError: { todo: 'the server is busy or down; try again later' },
  ConflictedDocError: { todo: "see 'soledad doc conflicts <id>', then 'soledad doc resolve <id>'" },
  RevisionConflictError: { todo: "the document changed; 'soledad doc get' it again and retry with the new --rev" },
  DocumentDoesNotExistError: { todo: "check the id with 'soledad doc list'" },
  DocumentAlreadyDeletedError: { todo: 'nothing to do; the document is already deleted' },
  DocumentDeletedError: { todo: "use 'soledad doc get --include-deleted' to see the tombstone" },
  InvalidDocIdError: { todo: 'use letters, digits and - _ . : @ in document ids' },
  InvalidJSONError: { todo: `give a JSON object, e.g. '{"subject":"hi"}', or '-' to read it from stdin` },
  InvalidContentError: { todo: 'give a JSON object' },
  DocumentTooBigError: { todo: 'split the document or store the large part as a blob' },
  IndexDoesNotExistError: { todo: "see 'soledad index list'" },
  IndexNameTakenError: { todo: "delete the old index first ('soledad index delete <name>') or pick another name" },
  IndexDefinitionParseError: { todo: "use expressions like 'subject', 'lower(subject)', 'number(size, 8)'" },
  InvalidValueForIndexError: { todo: 'give one value per index expression' },
  InvalidGlobbingError: { todo: "after a '*' value every later value must be '*'" },
  SecretsNotFoundError: { todo: 'check --uuid and the recovery code' },
  SecretsFileCorruptedError: { todo: "restore the profile from a backup, or 'soledad recover' into a new profile" },
  DatabaseKeyError: { todo: "restore the profile from a backup, or 'soledad recover' into a new profile" },
  MacMismatchError: {
    todo: 'data failed verification and nothing was applied: this profile may hold other secrets (a different ' +
      "passphrase at 'soledad init' creates new ones), or the server altered it",
  },
  TamperedDocumentError: { todo: 'the server sent data that failed verification and nothing was applied; tell your provider' },
  RollbackError: { todo: 'the server sent an older revision and nothing was applied; tell your provider' },
  InvalidPreambleError: { todo: 'the data is damaged or not from Soledad; tell your provider' },
  BrokenSyncStreamError: { todo: 'run the sync again; it resumes where it stopped' },
  UserQuotaExceededError: { todo: 'delete documents or blobs, or ask your provider for more space' },
  QuotaExceededError: { todo: 'delete documents or blobs, or ask your provider for more space' },
  BlobNotFoundError: { todo: "check the id with 'soledad blob list'" },
  BlobAlreadyExistsError: { todo: 'blobs are immutable; store the new content under a new id' },
  InvalidFlagsError: { todo: 'use PENDING, PROCESSING, PROCESSED or FAILED' },
  MaximumRetriesError: { todo: "check the connection and run 'soledad blob sync' again" },
  ConfigError: { todo: "check the profile ('soledad status') and the --server/--ca values" },
  DatabaseClosedError: { todo: 'run the command again' },
};

/** What the CLI prints about an error. */
export interface ErrorReport {
  /** The error's class name, e.g. `WrongPassphraseError`. */
  name: string;
  /** The catalogue code, when it has one. */
  code?: string;
  /** One line: what happened. */
  message: string;
  /** One line: what to do. */
  hint?: string;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * Describe an error for a person: its name, a one-line message and the next step.
 *
 * @example
 * describeError(new WrongPassphraseError()); // { name: 'WrongPassphraseError', message: 'wrong passphrase', … }
 */
export function describeError(err: unknown): ErrorReport {
  if (err instanceof UsageError) {
    return { name: 'UsageError', message: oneLine(err.message), ...(err.hint !== undefined ? { hint: err.hint } : {}) };
  }
  if (err instanceof CliError) {
    return { name: err.name, message: oneLine(err.message), ...(err.hint !== undefined ? { hint: err.hint } : {}) };
  }
  if (err instanceof SoledadError) {
    const advice = ADVICE[err.name];
    const message = oneLine(advice?.what ?? err.message);
    return { name: err.name, code: err.code, message, ...(advice !== undefined ? { hint: advice.todo } : {}) };
  }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      name: err.name || 'Error',
      ...(typeof code === 'string' ? { code } : {}),
      message: oneLine(err.message),
      hint: 'rerun with --debug for details',
    };
  }
  return { name: 'Error', message: oneLine(String(err)) };
}

/**
 * The single line printed on stderr: `Name: message — hint`, or the same as one JSON object with `--json`.
 *
 * @example
 * errorLine(new WrongPassphraseError(), false);
 * // "WrongPassphraseError: wrong passphrase — try again or use 'soledad recover'"
 */
export function errorLine(err: unknown, json: boolean): string {
  const r = describeError(err);
  if (json) return JSON.stringify({ error: r.name, ...(r.code !== undefined ? { code: r.code } : {}), message: r.message, ...(r.hint !== undefined ? { hint: r.hint } : {}) });
  return `${r.name}: ${r.message}${r.hint !== undefined ? ` — ${r.hint}` : ''}`;
}

/**
 * The stack and cause chain, for `--debug` only.
 *
 * @example
 * if (debug) stderr.write(debugDetails(err));
 */
export function debugDetails(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && depth < 8; depth += 1) {
    parts.push(depth === 0 ? '' : 'caused by: ');
    parts.push(cur instanceof Error ? (cur.stack ?? `${cur.name}: ${cur.message}`) : String(cur));
    parts.push('\n');
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join('');
}

/**
 * 2 for usage errors, 1 for everything else.
 *
 * @example
 * process.exitCode = exitCodeOf(err);
 */
export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? 2 : 1;
}
