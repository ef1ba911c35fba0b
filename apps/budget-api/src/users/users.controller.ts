import {
  Body,
  Controller,
  Delete,
  Get,
  Header,
  HttpCode,
  Inject,
  Param,
  Post,
  Put,
  Query,
} from '@nestjs/common';
import { Stores, type UserActor } from '@aigov/authz';
import type { SiteRole } from '@aigov/db';
import { Authenticated, CurrentActor, Public, RequestId } from '../auth/decorators';
import { KeyIdParam, UserRefParam } from '../http/params';
import { PageQuery, listBody, page } from '../http/query.dto';
import { apiKeyResponse, userResponse } from '../http/responses';
import { CreateKeyDto, CreateUserDto, FirstUserDto, ListUsersQuery, SetRolesDto } from './users.dto';
import { SetStatusDto } from './user-status.dto';
import { UsersService } from './users.service';

@Controller('api/v2/users')
@Authenticated()
export class UsersController {
  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(UsersService) private readonly users: UsersService,
  ) {}

  /** Bootstrap: the first user becomes owner; 409 once any user exists. The token is shown once. */
  @Public()
  @Post('first')
  @HttpCode(201)
  // The reply carries a token secret: no cache may keep it (CONTRACT 2).
  @Header('Cache-Control', 'no-store')
  async first(@RequestId() requestId: string, @Body() body: FirstUserDto) {
    const { user, token } = await this.users.createFirstUser(requestId, {
      username: body.username,
      email: body.email,
      name: body.name ?? null,
    });
    return { user: userResponse(user), token };
  }

  @Get()
  async list(@CurrentActor() actor: UserActor, @Query() query: ListUsersQuery) {
    const { users, ...counted } = await this.stores.users.listUsers(actor, query.q ?? null, page(query));
    return listBody('users', users.map(userResponse), counted);
  }

  @Post()
  @HttpCode(201)
  async create(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Body() body: CreateUserDto,
  ) {
    const user = await this.users.createUser(actor, requestId, {
      username: body.username,
      email: body.email,
      name: body.name ?? null,
      roles: (body.roles ?? []) as SiteRole[],
      organizationIds: body.organization_ids ?? null,
    });
    return userResponse(user);
  }

  @Get(':user')
  async get(@CurrentActor() actor: UserActor, @Param('user', UserRefParam) ref: string) {
    return userResponse(await this.stores.users.getUser(actor, ref));
  }

  @Delete(':user')
  @HttpCode(204)
  async delete(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('user', UserRefParam) ref: string,
  ) {
    await this.users.deleteUser(actor, requestId, ref);
  }

  @Put(':user/roles')
  @HttpCode(200)
  async setRoles(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('user', UserRefParam) ref: string,
    @Body() body: SetRolesDto,
  ) {
    return userResponse(await this.users.setRoles(actor, requestId, ref, body.roles as SiteRole[]));
  }

  /** Suspends or reactivates: a suspended user's tokens are refused; nothing is removed. */
  @Put(':user/status')
  @HttpCode(200)
  async setStatus(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('user', UserRefParam) ref: string,
    @Body() body: SetStatusDto,
  ) {
    return userResponse(await this.users.setStatus(actor, requestId, ref, body.status));
  }

  @Post(':user/keys')
  @HttpCode(201)
  @Header('Cache-Control', 'no-store')
  async createKey(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('user', UserRefParam) ref: string,
    @Body() body: CreateKeyDto,
  ) {
    const { key, token } = await this.users.createKey(
      actor,
      requestId,
      ref,
      body.name ?? null,
      body.lifetime_seconds ?? null,
    );
    return { id: key.id, key: token, name: key.name, expires_at: apiKeyResponse(key).expires_at };
  }

  @Get(':user/keys')
  async listKeys(
    @CurrentActor() actor: UserActor,
    @Param('user', UserRefParam) ref: string,
    @Query() query: PageQuery,
  ) {
    const { keys, ...counted } = await this.users.listKeys(actor, ref, page(query));
    return listBody('keys', keys.map(apiKeyResponse), counted);
  }

  @Delete(':user/keys/:id')
  @HttpCode(204)
  async deleteKey(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('user', UserRefParam) ref: string,
    @Param('id', KeyIdParam) id: string,
  ) {
    await this.users.deleteKey(actor, requestId, ref, id);
  }
}
