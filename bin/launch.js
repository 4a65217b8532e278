// Shared launcher of the command-line entry points: the compiled JavaScript when the package was built
// (`npm run build` → dist/), else the TypeScript source through tsx (a checkout after `npm ci`).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Run `src/cli/<name>.ts` (or its build). */
export async function launch(name) {
  const built = join(root, 'dist', 'src', 'cli', `${name}.js`);
  if (existsSync(built)) {
    await import(pathToFileURL(built).href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'src', 'cli', `${name}.ts`)).href);
}
