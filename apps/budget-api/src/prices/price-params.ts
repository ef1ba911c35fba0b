import { Injectable, type PipeTransform } from '@nestjs/common';
import { DomainError } from '@aigov/errors';

const PROVIDER = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const PROVIDER_RULE =
  'must be 1 to 64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit';
// Control characters (C0, DEL, C1) never belong in a model id; everything else may (`/`, `:`, `@`, ...).
const CONTROL = /\p{Cc}/u;
const MODEL_RULE = 'must be 1 to 255 characters without control characters';

/** `{provider}` path segment of the price book. */
@Injectable()
export class ProviderParam implements PipeTransform<string, string> {
  transform(value: string): string {
    if (typeof value === 'string' && PROVIDER.test(value)) return value;
    throw DomainError.invalid(`Invalid provider: ${PROVIDER_RULE}.`, [
      { field: 'provider', detail: PROVIDER_RULE },
    ]);
  }
}

/**
 * `{model}` path segment, already percent-decoded by the router: model ids contain `/`, `:`, `@`,
 * `.` and `~`, and clients send them URL-encoded (`accounts%2Ffireworks%2Fmodels%2Fx`).
 */
@Injectable()
export class ModelParam implements PipeTransform<string, string> {
  transform(value: string): string {
    if (typeof value === 'string' && value.length > 0 && [...value].length <= 255 && !CONTROL.test(value)) {
      return value;
    }
    throw DomainError.invalid(`Invalid model: ${MODEL_RULE}.`, [{ field: 'model', detail: MODEL_RULE }]);
  }
}
