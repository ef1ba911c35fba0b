import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROLE_TABLE } from '@aigov/authz';
import {
  BEGIN_MARKER,
  END_MARKER,
  permissionsDocPath,
  renderRoleTable,
  withRoleTable,
} from './permissions-doc';

describe('docs/permissions.md', () => {
  const doc = fs.readFileSync(permissionsDocPath(path.resolve(__dirname, '..')), 'utf8');

  it('holds exactly the role table that npm run docs:permissions renders from ROLE_TABLE', () => {
    // On failure: run `npm run docs:permissions` and commit docs/permissions.md.
    expect(withRoleTable(doc)).toBe(doc);
  });

  it('has one row per action of the role table', () => {
    const generated = doc.slice(doc.indexOf(BEGIN_MARKER), doc.indexOf(END_MARKER));
    for (const action of Object.keys(ROLE_TABLE)) expect(generated).toContain(`(\`${action}\`)`);
  });

  it('marks exactly the roles a rule names', () => {
    const table = renderRoleTable({ 'audit.read': { site: ['auditor'] } });
    const row = table.split('\n').find((l) => l.includes('`audit.read`'));
    // operation, routes, owner, user-admin, auditor, ai-gateway, three organization roles, also
    const cells = row
      ?.split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    expect(cells?.slice(2)).toEqual(['', '', '✓', '', '', '', '', '']);
  });

  it('refuses an action that has no description, naming it', () => {
    expect(() => renderRoleTable({ 'made.up': { site: ['owner'] } })).toThrow(/made\.up/);
  });

  it('refuses a document without the markers', () => {
    expect(() => withRoleTable('# Permissions\n')).toThrow(/markers/);
  });
});
