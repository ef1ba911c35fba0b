import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { findRepoRoot, SEED_RELATIVE_PATH } from '../generator/cli';

/** The committed seed file, found from the repository root (same path in src and dist runs). */
export function embeddedSeedPath(): string {
  return path.join(findRepoRoot(__dirname), SEED_RELATIVE_PATH);
}

/**
 * Reads the embedded seed and checks it is a non-empty JSON array; anything else is a startup
 * error naming the file.
 */
export async function readEmbeddedSeed(file = embeddedSeedPath()): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`The embedded price seed ${file} is unreadable: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`The embedded price seed ${file} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw new Error(`The embedded price seed ${file} is empty; run npm run prices:generate`);
  }
  return text;
}
