import { confusableSkeleton, hasLoneSurrogate, identifierProblem, looksLike, nameProblem } from './text';

describe('name rules', () => {
  it.each([
    ['Engineering'],
    ['R&D: Team 2'],
    ['Инженеры'],
    ['Ingénieurs São Paulo'],
    ['開発チーム'],
    ['팀 Seoul'],
    ['Team 東京'],
    ['a  b'],
  ])('accepts %s', (name) => {
    expect(nameProblem(name)).toBeNull();
  });

  it.each([
    ['zero-width space', 'Everyone\u200b', /invisible/],
    ['zero-width joiner', 'a\u200db', /invisible/],
    ['bidi override', 'a\u202eb', /invisible/],
    ['soft hyphen', 'a\u00adb', /invisible/],
    ['Hangul filler', 'a\u3164b', /invisible/],
    ['variation selector', 'a\ufe0fb', /invisible/],
    ['line separator', 'a\u2028b', /invisible/],
    ['tab', 'a\tb', /invisible/],
    ['lone surrogate', 'a\ud800b', /invisible/],
    ['private use', 'a\ue000b', /invisible/],
    ['trailing space', 'Everyone ', /space/],
    ['leading no-break space', '\u00a0Everyone', /space/],
    ['ideographic space at the end', 'Team\u3000', /space/],
    ['Latin with a Cyrillic e', 'engin\u0435ering', /mix/],
    ['Latin with a Greek omicron', 'D\u03bfcs', /mix/],
  ])('refuses a name with a %s', (_what, name, problem) => {
    expect(nameProblem(name)).toMatch(problem);
  });
});

describe('look-alikes of a reserved name', () => {
  it.each([
    ['Everyone'],
    ['everyone'],
    ['EVERYONE'],
    ['\u0415veryone'], // Cyrillic capital Ie
    ['Ev\u0435ry\u043en\u0435'], // Cyrillic e and o
    ['\uff25\uff56\uff45\uff52\uff59\uff4f\uff4e\uff45'], // fullwidth
    ['Every0ne'],
    ['E\u0301veryone'], // a combining accent
    ['Every one'],
  ])('%s looks like Everyone', (name) => {
    expect(looksLike(name, 'Everyone')).toBe(true);
  });

  it.each([['Everyone2'], ['Everybody'], ['Everyones']])('%s does not', (name) => {
    expect(looksLike(name, 'Everyone')).toBe(false);
  });

  it('maps Cyrillic and Greek look-alikes to Latin', () => {
    expect(confusableSkeleton('\u0430\u0440\u0440\u0455')).toBe('apps');
    expect(confusableSkeleton('\u03bf\u03c1')).toBe('op');
  });
});

describe('identifiers stored as given (model ids)', () => {
  it('accepts the characters model ids use', () => {
    expect(identifierProblem('accounts/fireworks/models/llama-v3p1:8b@latest~1.0')).toBeNull();
  });

  it.each([['gpt\u200b4'], ['gpt\u00ad4'], [' gpt-4'], ['gpt-4 '], ['gpt\u00004'], ['gpt\ud8004']])(
    'refuses %j',
    (id) => {
      expect(identifierProblem(id)).not.toBeNull();
    },
  );
});

describe('lone surrogates', () => {
  it('tells a lone surrogate from a pair', () => {
    expect(hasLoneSurrogate('a\ud83d')).toBe(true);
    expect(hasLoneSurrogate('a\ude00')).toBe(true);
    expect(hasLoneSurrogate('a\ud83d\ude00')).toBe(false);
  });
});
