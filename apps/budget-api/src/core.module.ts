import { type DynamicModule, Global, Module } from '@nestjs/common';
import { Stores } from '@aigov/authz';
import { DataSource } from 'typeorm';
import { BUDGET_API_OPTIONS, type BudgetApiOptions } from './options';

/** What every feature module of the API uses: the authorization stores and the options. */
@Global()
@Module({})
export class CoreModule {
  static forRoot(options: BudgetApiOptions): DynamicModule {
    return {
      module: CoreModule,
      providers: [
        { provide: BUDGET_API_OPTIONS, useValue: options },
        { provide: Stores, useFactory: (ds: DataSource) => new Stores(ds), inject: [DataSource] },
      ],
      exports: [BUDGET_API_OPTIONS, Stores],
    };
  }
}
