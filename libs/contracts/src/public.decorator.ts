import { SetMetadata } from '@nestjs/common';

/** Marks a route that needs no token. The API guard denies every route that lacks a declaration. */
export const IS_PUBLIC_KEY = 'aigov:public';
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC_KEY, true);
