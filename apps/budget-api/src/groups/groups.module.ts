import { Module } from '@nestjs/common';
import { GroupsController, OrganizationGroupsController } from './groups.controller';
import { GroupsService } from './groups.service';

@Module({ controllers: [OrganizationGroupsController, GroupsController], providers: [GroupsService] })
export class GroupsModule {}
