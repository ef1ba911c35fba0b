import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Patch, Post, Query } from '@nestjs/common';
import { Stores, type UserActor } from '@aigov/authz';
import { Authenticated, CurrentActor, RequestId } from '../auth/decorators';
import { UuidParam } from '../http/params';
import { PageQuery, listBody, page } from '../http/query.dto';
import { groupMembersPageResponse, groupResponse } from '../http/responses';
import { OrganizationRefParam } from '../http/params';
import { CreateGroupDto, PatchGroupDto, parseUserLists } from './groups.dto';
import { GroupsService } from './groups.service';

/** Groups under their organization: create and list. */
@Controller('api/v2/organizations/:organization/groups')
@Authenticated()
export class OrganizationGroupsController {
  constructor(@Inject(GroupsService) private readonly groups: GroupsService) {}

  @Post()
  @HttpCode(201)
  async create(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('organization', OrganizationRefParam) orgRef: string,
    @Body() body: CreateGroupDto,
  ) {
    const group = await this.groups.createGroup(
      actor,
      requestId,
      orgRef,
      body.name,
      body.display_name ?? null,
    );
    return groupResponse(group, { memberCount: 0, members: [] });
  }

  @Get()
  async list(
    @CurrentActor() actor: UserActor,
    @Param('organization', OrganizationRefParam) orgRef: string,
    @Query() query: PageQuery,
  ) {
    const { groups, ...counted } = await this.groups.listGroups(actor, orgRef, page(query));
    return listBody(
      'groups',
      groups.map((g) => groupResponse(g)),
      counted,
    );
  }
}

@Controller('api/v2/groups')
@Authenticated()
export class GroupsController {
  constructor(
    @Inject(GroupsService) private readonly groups: GroupsService,
    @Inject(Stores) private readonly stores: Stores,
  ) {}

  @Get(':group')
  async get(@CurrentActor() actor: UserActor, @Param('group', new UuidParam('group')) id: string) {
    const { group, ...preview } = await this.groups.getGroup(actor, id);
    return groupResponse(group, preview);
  }

  /** Every member, a page at a time, by username (the Everyone group: the organization's members). */
  @Get(':group/members')
  async listMembers(
    @CurrentActor() actor: UserActor,
    @Param('group', new UuidParam('group')) id: string,
    @Query() query: PageQuery,
  ) {
    const { members, ...counted } = await this.stores.groups.listGroupMembers(actor, id, page(query));
    return listBody('members', groupMembersPageResponse(members), counted);
  }

  @Patch(':group')
  @HttpCode(200)
  async patch(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('group', new UuidParam('group')) id: string,
    @Body() body: PatchGroupDto,
  ) {
    const { add, remove } = parseUserLists(body);
    const { group, ...preview } = await this.groups.patchGroup(actor, requestId, id, {
      name: body.name,
      displayName: body.display_name,
      add,
      remove,
    });
    return groupResponse(group, preview);
  }

  @Delete(':group')
  @HttpCode(204)
  async delete(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('group', new UuidParam('group')) id: string,
  ): Promise<void> {
    await this.groups.deleteGroup(actor, requestId, id);
  }
}
