import { Injectable, type PipeTransform } from '@nestjs/common';
import { identifierProblem } from '@aigov/contracts';
import { DomainError } from '@aigov/errors';

const PROVIDER = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const PROVIDER_RULE =
  'must be 1 to 64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit';
const MODEL_LENGTH_RULE = 'must be 1 to 255 characters';

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
    // Stored as given (no normalization: the id is the provider's), but never with control or
    // format characters or surrounding spaces; everything else may appear (`/`, `:`, `@`, ...).
    const length = typeof value === 'string' ? [...value].length : 0;
    const detail = length < 1 || length > 255 ? MODEL_LENGTH_RULE : identifierProblem(value);
    if (!detail) return value;
    throw DomainError.invalid(`Invalid model: ${detail}.`, [{ field: 'model', detail }]);
  }
}
