import * as path from 'node:path';
import { register } from 'tsconfig-paths';

// Jest's globalSetup does not go through moduleNameMapper: resolve the @aigov/* aliases here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { compilerOptions } = require('../../../tsconfig.json') as {
  compilerOptions: { paths: Record<string, string[]> };
};
register({ baseUrl: path.join(__dirname, '..', '..', '..'), paths: compilerOptions.paths });

/** Once per Jest run: the migrated template database every test file clones. */
export default async function globalSetup(): Promise<void> {
  // Required only now, after the aliases are registered (an import would be hoisted above).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { ensureTemplate } = require('./database') as typeof import('./database');
  await ensureTemplate();
}
