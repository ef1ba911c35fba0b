import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Put } from '@nestjs/common';
import { ApiBody } from '@nestjs/swagger';
import { Stores, type UserActor } from '@aigov/authz';
import type { UserOverride } from '@aigov/db';
import { AiBudgetRoute, Authenticated, CurrentActor, RequestId } from '../auth/decorators';
import { UserRefParam } from '../http/params';
import { StrictValidationPipe } from '../http/validation.pipe';
import { PutOverrideDto } from './overrides.dto';
import { OverridesService } from './overrides.service';

const overrideResponse = (o: UserOverride) => ({
  user_id: o.userId,
  group_id: o.groupId,
  spend_limit_micros: Number(o.spendLimitMicros),
  created_at: o.createdAt.toISOString(),
  updated_at: o.updatedAt.toISOString(),
});

@Controller('api/v2/users/:user/ai/budget')
@Authenticated()
@AiBudgetRoute()
export class OverridesController {
  private readonly validate = new StrictValidationPipe();

  constructor(
    @Inject(Stores) private readonly stores: Stores,
    @Inject(OverridesService) private readonly overrides: OverridesService,
  ) {}

  @Get()
  async get(@CurrentActor() actor: UserActor, @Param('user', UserRefParam) user: string) {
    return overrideResponse(await this.overrides.get(actor, user));
  }

  /** The body is validated here, after the user lookup (docs/api.md's order of checks). */
  @Put()
  @HttpCode(200)
  @ApiBody({ type: PutOverrideDto })
  async put(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('user', UserRefParam) userRef: string,
    @Body() rawBody: unknown,
  ) {
    const user = await this.stores.users.getUser(actor, userRef);
    const body = (await this.validate.transform(rawBody, {
      type: 'body',
      metatype: PutOverrideDto,
    })) as PutOverrideDto;
    return overrideResponse(await this.overrides.put(actor, requestId, user, body));
  }

  @Delete()
  @HttpCode(204)
  async delete(
    @CurrentActor() actor: UserActor,
    @RequestId() requestId: string,
    @Param('user', UserRefParam) user: string,
  ) {
    await this.overrides.delete(actor, requestId, user);
  }
}
