/**
 * Identity events (docs/identity-events.md): what identity systems publish on `identity.>` and
 * apps/membership-listener applies. Each is a CloudEvent 1.0 whose `type` equals its subject; the
 * `id` is the idempotency key and `time` orders changes to the same entity or membership.
 */
export const IDENTITY_SUBJECTS = {
  userUpserted: 'identity.user.upserted',
  userDeleted: 'identity.user.deleted',
  organizationUpserted: 'identity.organization.upserted',
  organizationDeleted: 'identity.organization.deleted',
  organizationMemberAdded: 'identity.organization.member.added',
  organizationMemberRemoved: 'identity.organization.member.removed',
  groupUpserted: 'identity.group.upserted',
  groupDeleted: 'identity.group.deleted',
  groupMemberAdded: 'identity.group.member.added',
  groupMemberRemoved: 'identity.group.member.removed',
  organizationSnapshot: 'identity.organization.snapshot',
} as const;
export type IdentitySubject = (typeof IDENTITY_SUBJECTS)[keyof typeof IDENTITY_SUBJECTS];
export const IDENTITY_SUBJECT_LIST: readonly IdentitySubject[] = Object.values(IDENTITY_SUBJECTS);

/** JetStream names of the identity pipeline. */
export const IDENTITY_STREAM = 'IDENTITY';
export const IDENTITY_STREAM_SUBJECTS = 'identity.>';
export const IDENTITY_CONSUMER = 'membership-listener';
export const DLQ_STREAM = 'DLQ';
export const DLQ_STREAM_SUBJECTS = 'aigov.dlq.>';
export const IDENTITY_DLQ_SUBJECT = 'aigov.dlq.identity';

export type UserStatus = 'active' | 'suspended';
export type OrganizationRole = 'organization-admin' | 'organization-user-admin' | 'organization-auditor';

export interface UserUpsertedData {
  user_id: string;
  username: string;
  email: string;
  name?: string | null;
  status?: UserStatus;
}
export interface UserDeletedData {
  user_id: string;
}
export interface OrganizationUpsertedData {
  organization_id: string;
  name: string;
  display_name?: string | null;
}
export interface OrganizationDeletedData {
  organization_id: string;
}
export interface OrganizationMemberAddedData {
  organization_id: string;
  user_id: string;
  /** Absent: the member keeps the roles it has (none when it is new). */
  roles?: OrganizationRole[];
}
export interface OrganizationMemberRemovedData {
  organization_id: string;
  user_id: string;
}
export interface GroupUpsertedData {
  group_id: string;
  organization_id: string;
  name: string;
  display_name?: string | null;
}
export interface GroupDeletedData {
  group_id: string;
}
export interface GroupMemberData {
  group_id: string;
  user_id: string;
}
/**
 * The whole intended state of one organization. A snapshot too large for one NATS message is
 * sent in parts that share `part.snapshot_id`; each part repeats the organization's fields and
 * carries a slice of the lists (a group may appear in several parts, its members are the union).
 * The parts are applied together once all of them have arrived.
 */
export interface OrganizationSnapshotData {
  organization_id: string;
  name: string;
  display_name?: string | null;
  users: UserUpsertedData[];
  members: { user_id: string; roles: OrganizationRole[] }[];
  groups: { group_id: string; name: string; display_name?: string | null; members: string[] }[];
  part?: { snapshot_id: string; index: number; count: number };
}

export interface IdentityDataBySubject {
  'identity.user.upserted': UserUpsertedData;
  'identity.user.deleted': UserDeletedData;
  'identity.organization.upserted': OrganizationUpsertedData;
  'identity.organization.deleted': OrganizationDeletedData;
  'identity.organization.member.added': OrganizationMemberAddedData;
  'identity.organization.member.removed': OrganizationMemberRemovedData;
  'identity.group.upserted': GroupUpsertedData;
  'identity.group.deleted': GroupDeletedData;
  'identity.group.member.added': GroupMemberData;
  'identity.group.member.removed': GroupMemberData;
  'identity.organization.snapshot': OrganizationSnapshotData;
}

/** A validated identity event: the CloudEvent's fields the listener uses, `time` parsed. */
export type IdentityEvent = {
  [S in IdentitySubject]: {
    id: string;
    source: string;
    type: S;
    time: Date;
    data: IdentityDataBySubject[S];
  };
}[IdentitySubject];
