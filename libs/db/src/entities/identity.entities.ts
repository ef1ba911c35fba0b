import {
  Check,
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryColumn,
  PrimaryGeneratedColumn,
  Unique,
  UpdateDateColumn,
} from 'typeorm';

// These mirror migrations/1764500000000-identity-budgets-audit.ts, names included, so the drift
// check stays empty. Triggers, functions and the group_members_expanded view are outside
// TypeORM's view and have their own tests. Repositories use plain SQL; these exist for the schema.

@Entity({ name: 'organizations' })
@Unique('organizations_name_key', ['name'])
@Check('organizations_name_check', `name ~ '^[a-z0-9-]{1,64}$'`)
export class OrganizationEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'organizations_pkey' })
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ name: 'display_name', type: 'text', nullable: true })
  displayName!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}

@Entity({ name: 'users' })
// Trigram (GIN) indexes for the `q` search: not expressible here, so the drift check leaves them be.
@Index('users_username_trgm_idx', { synchronize: false })
@Index('users_email_trgm_idx', { synchronize: false })
@Index('users_name_trgm_idx', { synchronize: false })
@Unique('users_username_key', ['username'])
@Unique('users_email_key', ['email'])
@Check('users_username_check', `username ~ '^[a-z0-9_-]{1,64}$' AND username <> 'me'`)
@Check('users_status_check', `status IN ('active', 'suspended')`)
@Check('users_roles_check', `roles <@ ARRAY['owner', 'user-admin', 'auditor', 'ai-gateway']::text[]`)
export class UserEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'users_pkey' })
  id!: string;

  @Column({ type: 'text' })
  username!: string;

  @Column({ type: 'text' })
  email!: string;

  @Column({ type: 'text', nullable: true })
  name!: string | null;

  @Column({ type: 'text', default: 'active' })
  status!: 'active' | 'suspended';

  @Column({ type: 'text', array: true, default: () => "'{}'" })
  roles!: string[];

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}

@Entity({ name: 'organization_members' })
@Index('organization_members_user_id_idx', ['userId'])
@Check(
  'organization_members_roles_check',
  `roles <@ ARRAY['organization-admin', 'organization-user-admin', 'organization-auditor']::text[]`,
)
export class OrganizationMemberEntity {
  @PrimaryColumn({
    name: 'organization_id',
    type: 'uuid',
    primaryKeyConstraintName: 'organization_members_pkey',
  })
  organizationId!: string;

  @PrimaryColumn({ name: 'user_id', type: 'uuid', primaryKeyConstraintName: 'organization_members_pkey' })
  userId!: string;

  @ManyToOne(() => OrganizationEntity, {
    onDelete: 'CASCADE',
    nullable: false,
  })
  @JoinColumn({
    name: 'organization_id',
    foreignKeyConstraintName: 'organization_members_organization_id_fkey',
  })
  organization?: OrganizationEntity;

  @ManyToOne(() => UserEntity, {
    onDelete: 'CASCADE',
    nullable: false,
  })
  @JoinColumn({ name: 'user_id', foreignKeyConstraintName: 'organization_members_user_id_fkey' })
  user?: UserEntity;

  @Column({ type: 'text', array: true, default: () => "'{}'" })
  roles!: string[];

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'clock_timestamp()' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}

@Entity({ name: 'groups' })
// An expression index (Everyone first, then by name): not expressible here.
@Index('groups_list_order_idx', { synchronize: false })
@Unique('groups_organization_id_name_key', ['organizationId', 'name'])
@Check('groups_name_check', `char_length(name) BETWEEN 1 AND 255 AND name !~ '[[:cntrl:]]'`)
@Check(
  'groups_everyone_reserved_check',
  `CASE WHEN id = organization_id THEN name = 'Everyone' ELSE lower(name) <> 'everyone' END`,
)
export class GroupEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'groups_pkey' })
  id!: string;

  @Column({ name: 'organization_id', type: 'uuid' })
  organizationId!: string;

  @ManyToOne(() => OrganizationEntity, {
    onDelete: 'CASCADE',
    nullable: false,
  })
  @JoinColumn({ name: 'organization_id', foreignKeyConstraintName: 'groups_organization_id_fkey' })
  organization?: OrganizationEntity;

  @Column({ type: 'text' })
  name!: string;

  @Column({ name: 'display_name', type: 'text', nullable: true })
  displayName!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}

@Entity({ name: 'group_members' })
@Index('group_members_user_id_idx', ['userId'])
export class GroupMemberEntity {
  @PrimaryColumn({ name: 'group_id', type: 'uuid', primaryKeyConstraintName: 'group_members_pkey' })
  groupId!: string;

  @PrimaryColumn({ name: 'user_id', type: 'uuid', primaryKeyConstraintName: 'group_members_pkey' })
  userId!: string;

  @ManyToOne(() => GroupEntity, {
    onDelete: 'CASCADE',
    nullable: false,
  })
  @JoinColumn({ name: 'group_id', foreignKeyConstraintName: 'group_members_group_id_fkey' })
  group?: GroupEntity;

  @ManyToOne(() => UserEntity, {
    onDelete: 'CASCADE',
    nullable: false,
  })
  @JoinColumn({ name: 'user_id', foreignKeyConstraintName: 'group_members_user_id_fkey' })
  user?: UserEntity;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;
}

@Entity({ name: 'api_keys' })
@Index('api_keys_user_id_created_at_idx', ['userId', 'createdAt', 'id'])
@Check('api_keys_id_check', `id ~ '^[a-z0-9]{10}$'`)
export class ApiKeyEntity {
  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'api_keys_pkey' })
  id!: string;

  @Column({ name: 'user_id', type: 'uuid' })
  userId!: string;

  @ManyToOne(() => UserEntity, {
    onDelete: 'CASCADE',
    nullable: false,
  })
  @JoinColumn({ name: 'user_id', foreignKeyConstraintName: 'api_keys_user_id_fkey' })
  user?: UserEntity;

  @Column({ type: 'text', nullable: true })
  name!: string | null;

  @Column({ name: 'secret_hash', type: 'bytea' })
  secretHash!: Buffer;

  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt!: Date | null;

  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true })
  lastUsedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;
}

@Entity({ name: 'group_ai_budgets' })
@Check('group_ai_budgets_spend_limit_micros_check', `spend_limit_micros >= 0`)
export class GroupAiBudgetEntity {
  @PrimaryColumn({ name: 'group_id', type: 'uuid', primaryKeyConstraintName: 'group_ai_budgets_pkey' })
  groupId!: string;

  @ManyToOne(() => GroupEntity, {
    onDelete: 'CASCADE',
    nullable: false,
  })
  @JoinColumn({ name: 'group_id', foreignKeyConstraintName: 'group_ai_budgets_group_id_fkey' })
  group?: GroupEntity;

  @Column({ name: 'spend_limit_micros', type: 'bigint' })
  spendLimitMicros!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}

@Entity({ name: 'audit_logs' })
@Index('audit_logs_time_id_idx', ['time', 'id'])
@Index('audit_logs_resource_type_time_idx', ['resourceType', 'time', 'id'])
@Index('audit_logs_resource_id_time_idx', ['resourceId', 'time', 'id'])
@Index('audit_logs_actor_time_idx', ['actor', 'time', 'id'])
@Index('audit_logs_action_time_idx', ['action', 'time', 'id'])
@Check('audit_logs_action_check', `action IN ('create', 'write', 'delete')`)
export class AuditLogEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'audit_logs_pkey' })
  id!: string;

  @Column({ type: 'timestamptz', default: () => 'clock_timestamp()' })
  time!: Date;

  @Column({ name: 'actor_id', type: 'uuid', nullable: true })
  actorId!: string | null;

  @Column({ type: 'text' })
  actor!: string;

  @Column({ type: 'text' })
  action!: 'create' | 'write' | 'delete';

  @Column({ name: 'resource_type', type: 'text' })
  resourceType!: string;

  @Column({ name: 'resource_id', type: 'text' })
  resourceId!: string;

  @Column({ name: 'organization_id', type: 'uuid', nullable: true })
  organizationId!: string | null;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  diff!: Record<string, unknown>;

  @Column({ name: 'request_id', type: 'text', nullable: true })
  requestId!: string | null;

  @Column({ type: 'text', nullable: true })
  reason!: string | null;
}

@Entity({ name: 'user_ai_budget_overrides' })
@Index('user_ai_budget_overrides_group_id_idx', ['groupId'])
@Check('user_ai_budget_overrides_spend_limit_micros_check', `spend_limit_micros >= 0`)
export class UserAiBudgetOverrideEntity {
  @PrimaryColumn({ name: 'user_id', type: 'uuid', primaryKeyConstraintName: 'user_ai_budget_overrides_pkey' })
  userId!: string;

  @ManyToOne(() => UserEntity, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'user_id', foreignKeyConstraintName: 'user_ai_budget_overrides_user_id_fkey' })
  user?: UserEntity;

  @Column({ name: 'group_id', type: 'uuid' })
  groupId!: string;

  @ManyToOne(() => GroupEntity, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'group_id', foreignKeyConstraintName: 'user_ai_budget_overrides_group_id_fkey' })
  group?: GroupEntity;

  @Column({ name: 'spend_limit_micros', type: 'bigint' })
  spendLimitMicros!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}
