import type { OrganizationSnapshotData } from '@aigov/contracts';
import type { Group } from '@aigov/db';
import type { ApplyOutcome } from './applier';
import { A, endedSince, membershipEndedKey, missing, type EventContext } from './context';

const sameRoles = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join() === [...b].sort().join();

/** What makes a snapshot impossible to apply as it stands, or an empty list. */
export function snapshotProblems(d: OrganizationSnapshotData): string[] {
  const errors: string[] = [];
  const members = new Set(d.members.map((m) => m.user_id));
  const groupIds = new Set<string>();
  const groupNames = new Set<string>();
  d.groups.forEach((g, i) => {
    if (g.group_id === d.organization_id) {
      errors.push(`data.groups[${i}].group_id: the Everyone group is managed with its organization`);
    }
    if (groupIds.has(g.group_id)) errors.push(`data.groups[${i}].group_id: listed twice`);
    if (groupNames.has(g.name.toLowerCase())) errors.push(`data.groups[${i}].name: listed twice`);
    groupIds.add(g.group_id);
    groupNames.add(g.name.toLowerCase());
    const strangers = g.members.filter((u) => !members.has(u));
    if (strangers.length > 0) {
      errors.push(`data.groups[${i}].members: ${strangers[0]} is not among the organization's members`);
    }
  });
  if (members.size !== d.members.length) errors.push('data.members: a user is listed twice');
  return errors.slice(0, 20);
}

/**
 * One snapshot from its parts: the organization's fields from the first part, the lists
 * concatenated (a group listed in several parts gets the union of its members), the time the
 * earliest of the parts' (so that no change newer than any part is overwritten).
 */
export function mergeSnapshotParts(
  parts: {
    index: number;
    count: number;
    organizationId: string;
    time: Date;
    data: OrganizationSnapshotData;
  }[],
): { snapshot: OrganizationSnapshotData; time: Date } | { errors: string[] } {
  const first = parts[0];
  const errors: string[] = [];
  if (parts.some((p) => p.organizationId !== first.organizationId)) {
    errors.push('data.organization_id: the parts of one snapshot name different organizations');
  }
  if (parts.some((p) => p.count !== first.count)) errors.push('data.part.count: the parts disagree');
  if (errors.length > 0) return { errors };
  const groups = new Map<string, OrganizationSnapshotData['groups'][number]>();
  for (const p of parts) {
    for (const g of p.data.groups) {
      const seen = groups.get(g.group_id);
      groups.set(g.group_id, seen ? { ...seen, members: [...new Set([...seen.members, ...g.members])] } : g);
    }
  }
  const snapshot: OrganizationSnapshotData = {
    organization_id: first.data.organization_id,
    name: first.data.name,
    display_name: first.data.display_name,
    users: parts.flatMap((p) => p.data.users),
    members: parts.flatMap((p) => p.data.members),
    groups: [...groups.values()],
  };
  const time = new Date(Math.min(...parts.map((p) => new Date(p.time).getTime())));
  return { snapshot, time };
}

/**
 * Converges one organization to the snapshot (docs/identity-events.md): upserts it, its listed
 * users, groups, members (exactly the listed roles) and group memberships; removes the members,
 * groups and group memberships it does not list. Every key it touches takes the snapshot's time;
 * a key with a newer time keeps its state. Removals go through the membership tables, so the
 * database ends and records the overrides that lose their membership. What already matches is
 * found with a few set-wise queries and left untouched (no audit entry, no write but the times).
 */
export async function applySnapshot(c: EventContext, d: OrganizationSnapshotData): Promise<ApplyOutcome> {
  const problems = snapshotProblems(d);
  if (problems.length > 0) return { kind: 'dead', reason: 'invalid_snapshot', errors: problems };
  const s = c.store;
  const o = d.organization_id;
  const claimAll = (entity: Parameters<typeof s.claimVersions>[1], keys: string[]) =>
    s.claimVersions(A, entity, keys, c.time, c.id);

  if ((await claimAll('organization', [o])).size > 0) {
    await s.upsertOrganization(A, { id: o, name: d.name, displayName: d.display_name });
  } else if (!(await s.getOrganization(A, o))) {
    return { kind: 'stale' }; // deleted after the snapshot was taken
  }

  // Users: only the listed ones that are missing or differ are written.
  const claimedUsers = await claimAll(
    'user',
    d.users.map((u) => u.user_id),
  );
  const users = d.users
    .filter((u) => claimedUsers.has(u.user_id))
    .map((u) => ({ id: u.user_id, username: u.username, email: u.email, name: u.name, status: u.status }));
  const differing = new Set(await s.usersDifferentFrom(A, users));
  for (const u of users) if (differing.has(u.id)) await s.upsertUser(A, u);

  // Groups listed: created or renamed.
  const claimedGroups = await claimAll(
    'group',
    d.groups.map((g) => g.group_id),
  );
  for (const g of d.groups) {
    if (!claimedGroups.has(g.group_id)) continue;
    const existing = await s.getGroup(A, g.group_id);
    if (existing && existing.organizationId !== o) {
      return {
        kind: 'dead',
        reason: 'group_moved',
        errors: [`data.groups: group ${g.group_id} belongs to organization ${existing.organizationId}`],
      };
    }
    if (
      existing &&
      existing.name === g.name &&
      (g.display_name === undefined || existing.displayName === g.display_name)
    ) {
      continue;
    }
    await s.upsertGroup(A, { id: g.group_id, organizationId: o, name: g.name, displayName: g.display_name });
  }

  // Members listed: added, or their roles set to exactly the listed ones.
  const current = await s.organizationMembers(A, o);
  const claimedMembers = await claimAll(
    'organization_member',
    d.members.map((m) => `${o}/${m.user_id}`),
  );
  const toAdd = d.members.filter((m) => claimedMembers.has(`${o}/${m.user_id}`) && !current.has(m.user_id));
  const usernames = await s.usernames(A, [
    ...d.members.map((m) => m.user_id),
    ...d.groups.flatMap((g) => g.members),
  ]);
  const gone = new Set<string>();
  for (const m of toAdd.filter((x) => !usernames.has(x.user_id))) {
    // A user deleted after the snapshot was taken stays out; one not known yet is waited for.
    const outcome = missing(c, 'user', m.user_id, await s.versionOf(A, 'user', m.user_id));
    if (outcome.kind === 'retry') return outcome;
    gone.add(m.user_id);
  }
  const memberNow = new Set(current.keys());
  for (const m of d.members) {
    if (!claimedMembers.has(`${o}/${m.user_id}`) || gone.has(m.user_id)) continue;
    const roles = current.get(m.user_id);
    if (roles && sameRoles(roles, m.roles)) continue;
    await s.upsertOrganizationMember(
      A,
      o,
      { id: m.user_id, username: usernames.get(m.user_id) ?? '' },
      m.roles,
    );
    memberNow.add(m.user_id);
  }

  // Group memberships: listed ones added (when the user is a member now), others removed.
  const groupsNow = new Map<string, Group>((await s.groupsOfOrganization(A, o)).map((g) => [g.id, g]));
  const currentPairs = new Set(await s.groupMembershipsInOrganization(A, o));
  const listedPairs = d.groups.flatMap((g) => g.members.map((u) => `${g.group_id}/${u}`));
  const claimedPairs = await claimAll('group_member', listedPairs);
  // The memberships of the users about to join groups, FOR KEY SHARE before endedSince reads the
  // removals: a removal from the organization in another transaction then either waits for this
  // one (and finds the group memberships it adds) or is read below (see the member.removed handler).
  const joining = listedPairs.filter((k) => claimedPairs.has(k) && !currentPairs.has(k));
  await s.lockOrganizationMembers(
    A,
    o,
    joining.map((k) => k.split('/')[1]),
    false,
  );
  for (const key of listedPairs) {
    if (!claimedPairs.has(key) || currentPairs.has(key)) continue;
    const [groupId, userId] = key.split('/');
    const group = groupsNow.get(groupId);
    const username = usernames.get(userId);
    // A removal from the organization newer than the snapshot ended this group membership.
    if (!group || username === undefined || !memberNow.has(userId) || (await endedSince(c, o, userId)))
      continue;
    await s.addGroupMember(A, group, { id: userId, username });
  }
  const listed = new Set(listedPairs);
  const unlistedPairs = [...currentPairs].filter((k) => !listed.has(k));
  const endedPairs = await claimAll('group_member', unlistedPairs);
  for (const key of endedPairs) {
    const [groupId, userId] = key.split('/');
    await s.removeGroupMember(A, groupId, userId);
  }

  // Groups and members it does not list.
  const listedGroups = new Set(d.groups.map((g) => g.group_id));
  const unlistedGroups = [...groupsNow.keys()].filter((id) => !listedGroups.has(id));
  for (const id of await claimAll('group', unlistedGroups)) await s.deleteGroup(A, id);
  const listedMembers = new Set(d.members.map((m) => m.user_id));
  const unlistedMembers = [...current.keys()].filter((u) => !listedMembers.has(u)).map((u) => `${o}/${u}`);
  // An unlisted member's group membership newer than the snapshot proves a rejoin after it that
  // has not arrived yet: removing the member now would take that group membership with it.
  const rejoining = new Set(unlistedPairs.filter((k) => !endedPairs.has(k)).map((k) => k.split('/')[1]));
  for (const key of await claimAll('organization_member', unlistedMembers)) {
    const userId = key.split('/')[1];
    if (rejoining.has(userId)) return { kind: 'retry', reason: `a rejoin of ${key} comes first` };
    await claimAll('organization_member', [membershipEndedKey(o, userId)]);
    await s.removeOrganizationMember(A, o, userId);
  }
  return { kind: 'applied' };
}
