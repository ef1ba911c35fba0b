import 'reflect-metadata';
import { IsInt, IsOptional, IsString } from 'class-validator';
import { DomainError, MAX_VALIDATIONS, validationFailed } from '@aigov/errors';
import { StrictValidationPipe, prescan } from './validation.pipe';
import { CheckDto, EachElement, ValidateNestedList } from './validators';

class TierDto {
  @IsInt({ message: 'must be an integer' })
  at!: number;
}

@CheckDto((d: BodyDto) =>
  d.tiers && d.tiers.length > 1 ? [{ field: 'tiers', detail: 'must have one entry' }] : [],
)
class BodyDto {
  @IsString({ message: 'must be a string' })
  name!: string;

  @IsOptional()
  @EachElement((v) => v === 'a', 'must be a')
  letters?: string[];

  @IsOptional()
  @ValidateNestedList(() => TierDto, 5, 'tiers')
  tiers?: TierDto[];
}

const pipe = new StrictValidationPipe();
const run = (value: unknown) => pipe.transform(value, { type: 'body', metatype: BodyDto });

async function failure(value: unknown): Promise<DomainError> {
  try {
    await run(value);
  } catch (err) {
    if (err instanceof DomainError) return err;
    throw err;
  }
  throw new Error('expected a validation failure');
}

describe('prescan', () => {
  it('names unknown fields at the top and inside nested DTOs, before any conversion', () => {
    expect(prescan({ name: 'x', nme: 1, tiers: [{ at: 1, to: 2 }] }, BodyDto, true)).toEqual([
      { field: 'nme', detail: 'is not a field of this request' },
      { field: 'tiers[0].to', detail: 'is not a field of this request' },
    ]);
  });

  it('stops at MAX_VALIDATIONS problems', () => {
    const hostile = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 1]));
    const problems = prescan(hostile, BodyDto, true);
    expect(problems).toHaveLength(MAX_VALIDATIONS);
    expect(problems[0].field).toBe('k0');
  });

  it('normalizes strings to NFC in place, only when asked', () => {
    const body = { name: 'Cafe\u0301' };
    expect(prescan(body, BodyDto, false)).toEqual([]);
    expect(body.name).toBe('Cafe\u0301');
    expect(prescan(body, BodyDto, true)).toEqual([]);
    expect(body.name).toBe('Caf\u00e9');
  });

  it('refuses lone surrogates and NUL in keys and values, naming the field printably', () => {
    expect(prescan({ name: 'a\ud800' }, BodyDto, true)).toEqual([
      { field: 'name', detail: 'must not contain unpaired UTF-16 surrogates' },
    ]);
    expect(prescan({ '\udc00x': 1 }, BodyDto, true)[0].field).toBe('\ufffdx');
    expect(prescan({ name: 'a\u0000' }, BodyDto, true)[0].detail).toMatch(/NUL/);
  });

  it('refuses nesting deeper than 32 levels without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(prescan({ name: 'x', letters: deep }, BodyDto, true)).toEqual([
      { field: 'letters', detail: 'must not be nested more than 32 levels deep' },
    ]);
  });
});

describe('StrictValidationPipe', () => {
  it('names failing elements with their index, and runs DTO rules last', async () => {
    const letters = await failure({ name: 'x', letters: ['a', 'b', 'a', 'c'] });
    expect(letters.validations.map((v) => v.field)).toEqual(['letters[1]', 'letters[3]']);
    const rule = await failure({ name: 'x', tiers: [{ at: 1 }, { at: 2 }] });
    expect(rule.validations).toEqual([{ field: 'tiers', detail: 'must have one entry' }]);
  });

  it('accepts a valid body and returns the DTO', async () => {
    await expect(run({ name: 'x', letters: ['a'], tiers: [{ at: 1 }] })).resolves.toBeInstanceOf(BodyDto);
  });
});

describe('validationFailed', () => {
  it('says what is wrong with the first field as a sentence, and caps the list', () => {
    const many = Array.from({ length: 30 }, (_, i) => ({ field: `f${i}`, detail: 'must be x' }));
    const err = validationFailed(many);
    expect(err.message).toBe('Invalid f0: must be x (and more problems, see validations).');
    expect(err.validations).toHaveLength(MAX_VALIDATIONS);
    expect(validationFailed([{ field: 'n', detail: 'Must not exceed 5.' }]).message).toBe(
      'Invalid n: must not exceed 5.',
    );
    expect(validationFailed([{ field: 'zz', detail: 'is not a field of this request' }]).message).toBe(
      'Unknown field zz: is not a field of this request.',
    );
  });
});
