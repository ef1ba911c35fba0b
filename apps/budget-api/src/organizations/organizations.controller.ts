import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query } from '@nestjs/common';
import { Stores, type UserActor } from '@aigov/authz';
import type { OrgRole } from '@aigov/db';
import { Authenticated, CurrentActor, RequestId } from '../auth/decorators';
import { UserRefParam } from '../http/params';
import { PageQuery, listBody, page } from '../http/query.dto';
import { organizationMemberResponse, organizationResponse } from '../http/responses';
import { CreateOrganizationDto, PutMemberDto } from './organizations.dto';
import { OrganizationRefParam } from '../http/params';
import { OptionalBody } from '../http/validation.pipe';
import { OrganizationsService } from './organizations.service';

/** A list entry: the member shape without the organization id that the path already names. */
const listedMember = ({ organization_id: _org, ...member }: ReturnType<typeof organizationMemberResponse>) =>
  member;

@Controller('api/v2/organizations')
@Authenticated()
export class OrganizationsController {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(OrganizationsService) private readonly organizations: OrganizationsService,
  ) {}

  @Post()
  @HttpCode(201)
  async create(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Body() body: CreateOrganizationDto,
  ) {
    // The Everyone group comes with it (database trigger, same transaction).
    const org = await this.stores.transaction(requestId, (tx) =>
      tx.organizations.createOrganization(actor, body.name, body.display_name ?? null),
    );
    return organizationResponse(org);
  }

  @Get()
  async list(@CurrentActor() actor: UserActor, @Query() query: PageQuery) {
    const { organizations, ...counted } = await this.stores.organizations.listOrganizations(
      actor,
      page(query),
    );
    return listBody('organizations', organizations.map(organizationResponse), counted);
  }

  @Get(':organization')
  async get(@CurrentActor() actor: UserActor, @Param('organization', OrganizationRefParam) ref: string) {
    return organizationResponse(await this.stores.organizations.getOrganization(actor, ref));
  }

  @Get(':organization/members')
  async listMembers(
    @CurrentActor() actor: UserActor,
    @Param('organization', OrganizationRefParam) ref: string,
    @Query() query: PageQuery,
  ) {
    const { members, ...counted } = await this.organizations.listMembers(actor, ref, page(query));
    return listBody(
      'members',
      members.map((m) => listedMember(organizationMemberResponse(m))),
      counted,
    );
  }

  /** The body may be left out: an absent body adds the user and keeps any existing roles. */
  @Put(':organization/members/:user')
  @HttpCode(200)
  async putMember(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('organization', OrganizationRefParam) orgRef: string,
    @Param('user', UserRefParam) userRef: string,
    @Body(new OptionalBody(PutMemberDto)) raw: unknown,
  ) {
    const body = raw as PutMemberDto;
    const roles = body.roles === undefined ? null : ([...new Set(body.roles)] as OrgRole[]);
    const member = await this.organizations.putMember(actor, requestId, orgRef, userRef, roles);
    return organizationMemberResponse(member);
  }

  @Delete(':organization/members/:user')
  @HttpCode(204)
  async removeMember(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('organization', OrganizationRefParam) orgRef: string,
    @Param('user', UserRefParam) userRef: string,
  ): Promise<void> {
    await this.organizations.removeMember(actor, requestId, orgRef, userRef);
  }
}
