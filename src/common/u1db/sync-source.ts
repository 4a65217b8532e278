/**
 * U1DB's checks of what a sync peer claims about history (`_validate_source`, `validate_gen_and_trans_id`),
 * shared by the server engines and the client database.
 */
import { InvalidGenerationError, InvalidTransactionIdError } from '../errors.js';

/** A replica's generation and the transaction id recorded with it. */
export interface KnownGeneration {
  /** The generation. */
  readonly generation: number;
  /** Its transaction id. */
  readonly transactionId: string;
}

/**
 * A source may not go back in generations ({@link InvalidGenerationError}), nor change history at the same
 * generation ({@link InvalidTransactionIdError}).
 *
 * @example
 * validateSource({ generation: 5, transactionId: 'T-5' }, 4, 'T-4'); // throws InvalidGenerationError
 */
export function validateSource(known: KnownGeneration, gen: number, transId: string): void {
  if (gen < known.generation) throw new InvalidGenerationError();
  if (gen === known.generation && transId !== known.transactionId) throw new InvalidTransactionIdError();
}

/**
 * U1DB `validate_gen_and_trans_id` given the transaction id stored for `generation` (`undefined` if unknown).
 *
 * @example
 * validateGenAndTransId(3, 'T-3', undefined); // throws InvalidGenerationError
 */
export function validateGenAndTransId(generation: number, transactionId: string, storedTransId: string | undefined): void {
  if (generation === 0) return;
  if (storedTransId === undefined) throw new InvalidGenerationError();
  if (storedTransId !== transactionId) throw new InvalidTransactionIdError();
}
