import { ensureTemplate } from './database';

/** Once per Jest run: the migrated template database every test file clones. */
export default async function globalSetup(): Promise<void> {
  await ensureTemplate();
}
