/**
 * Help text shared by every `soledad` command: each one ends with at least one runnable example.
 */
import type { Command } from 'commander';

/**
 * Append an "Examples:" section to a command's `--help`.
 *
 * @example
 * withExamples(cmd, "soledad doc get D-1234", "soledad doc get D-1234 --json | jq .rev");
 */
export function withExamples<C extends Command>(cmd: C, ...examples: string[]): C {
  const title = examples.length === 1 ? 'Example:' : 'Examples:';
  cmd.addHelpText('after', `\n${title}\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
  return cmd;
}
