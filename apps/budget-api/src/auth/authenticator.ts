import { Inject, Injectable } from '@nestjs/common';
import { userActor, type UserActor } from '@aigov/authz';
import { ApiKeyRepository } from '@aigov/db';
import { DomainError } from '@aigov/errors';
import { APP_LOGGER, type Logger } from '@aigov/observability';
import { DataSource } from 'typeorm';
import { parseBearer, secretMatches } from './tokens';

const LAST_USED_GRANULARITY_MS = 60_000;

/** Turns an Authorization header into the caller, or a 401. One query per request. */
@Injectable()
export class Authenticator {
  private readonly keys: ApiKeyRepository;

  constructor(
    @Inject(DataSource) ds: DataSource,
    @Inject(APP_LOGGER) private readonly logger: Logger,
  ) {
    this.keys = new ApiKeyRepository(ds);
  }

  async authenticate(header: string | undefined): Promise<UserActor> {
    const parsed = parseBearer(header);
    if (!parsed) {
      // No credentials, or another scheme (Basic...): say what to send. A Bearer value that is
      // not one of our tokens is just invalid.
      const bearer = header !== undefined && /^\s*Bearer(\s|$)/i.test(header);
      throw new DomainError(
        'unauthenticated',
        bearer ? 'Invalid API token.' : 'Authentication required: use Authorization: Bearer <token>.',
      );
    }
    const principal = await this.keys.getPrincipal(parsed.id);
    if (!principal || !secretMatches(parsed.secret, principal.secretHash)) {
      throw new DomainError('unauthenticated', 'Invalid API token.');
    }
    // Checked only after the secret matched: the answer says nothing to whoever guesses key ids.
    if (principal.status === 'suspended') {
      throw new DomainError(
        'unauthenticated',
        'This account is suspended; ask an administrator to reactivate it.',
      );
    }
    const now = Date.now();
    if (principal.expiresAt && principal.expiresAt.getTime() <= now) {
      throw new DomainError('unauthenticated', 'API token expired.');
    }
    // Stamp last use at most once a minute: no write on every request.
    if (!principal.lastUsedAt || now - principal.lastUsedAt.getTime() > LAST_USED_GRANULARITY_MS) {
      this.keys
        .touch(principal.keyId)
        .catch((err: unknown) => this.logger.warn({ err }, 'could not stamp key use'));
    }
    return userActor(principal);
  }
}
