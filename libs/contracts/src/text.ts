/**
 * Text rules shared by every way names enter the system (HTTP bodies now, identity events
 * next): text is NFC-normalized, and a name must look like what it is. See
 * docs/decisions/names-and-look-alikes.md for why these rules and not others.
 */

/**
 * Characters that render as nothing or change how their neighbours render: controls, format
 * characters (zero-width spaces and joiners, bidi overrides, the BOM, the soft hyphen), lone
 * surrogates, line/paragraph separators, private-use and unassigned code points, and every
 * default-ignorable code point (Hangul fillers, variation selectors...).
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;
/** Control and format characters, and lone surrogates: what no identifier (a model id) may hold. */
const CONTROL_OR_FORMAT = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;
const LONE_SURROGATE = /\p{Cs}/u;
// \s covers every Unicode space separator (U+00A0, U+2000..U+200A, U+3000...) as well as ASCII.
const SURROUNDING_SPACE = /^\s|\s$/u;

/**
 * Scripts whose letters are mistaken for one another (Latin `e`, Cyrillic `е`, Greek `ε`...). A
 * name may use letters of at most one of them; other scripts combine freely (`開発チーム`).
 */
const CONFUSABLE_SCRIPTS = [
  /\p{Script=Latin}/u,
  /\p{Script=Cyrillic}/u,
  /\p{Script=Greek}/u,
  /\p{Script=Armenian}/u,
  /\p{Script=Cherokee}/u,
  /\p{Script=Coptic}/u,
  /\p{Script=Georgian}/u,
];

/** True when the string holds an unpaired UTF-16 surrogate (JSON can carry one; UTF-8 cannot). */
export function hasLoneSurrogate(value: string): boolean {
  return LONE_SURROGATE.test(value);
}

/** A string with each unpaired surrogate replaced by U+FFFD, so that it can be shown safely. */
export function withoutLoneSurrogates(value: string): string {
  return value.replace(/\p{Cs}/gu, '\ufffd');
}

/** The problem with a name (a group, organization, display or key name), or null when it is fine. */
export function nameProblem(value: string): string | null {
  if (INVISIBLE.test(value)) {
    return 'must not contain control, format, invisible or unassigned characters';
  }
  if (SURROUNDING_SPACE.test(value)) return 'must not start or end with a space';
  const scripts = CONFUSABLE_SCRIPTS.filter((script) => script.test(value)).length;
  if (scripts > 1) return 'must not mix letters of Latin, Cyrillic, Greek or other look-alike scripts';
  return null;
}

/** The problem with an identifier stored as given (a model id), or null. */
export function identifierProblem(value: string): string | null {
  if (CONTROL_OR_FORMAT.test(value)) return 'must not contain control or format characters';
  if (SURROUNDING_SPACE.test(value)) return 'must not start or end with a space';
  return null;
}

/**
 * Letters of other scripts that look like Latin ones, mapped to them (a small part of Unicode's
 * confusables table: the characters that can imitate an ASCII name). Lowercase only: the skeleton
 * is taken after lowercasing.
 */
const LATIN_LOOK_ALIKES: Record<string, string> = {
  // Cyrillic
  а: 'a',
  в: 'b',
  е: 'e',
  ё: 'e',
  г: 'r',
  һ: 'h',
  і: 'i',
  ї: 'i',
  ј: 'j',
  к: 'k',
  м: 'm',
  н: 'h',
  о: 'o',
  п: 'n',
  р: 'p',
  с: 'c',
  т: 't',
  у: 'y',
  х: 'x',
  ѕ: 's',
  ԁ: 'd',
  ԛ: 'q',
  ԝ: 'w',
  ѵ: 'v',
  ү: 'y',
  ɡ: 'g',
  // Greek
  α: 'a',
  β: 'b',
  ε: 'e',
  η: 'n',
  ι: 'i',
  κ: 'k',
  μ: 'u',
  ν: 'v',
  ο: 'o',
  ρ: 'p',
  τ: 't',
  υ: 'u',
  χ: 'x',
  γ: 'y',
  ζ: 'z',
  // Latin letters that pass for others
  ı: 'i',
  ȷ: 'j',
  ℓ: 'l',
  // Digits that pass for letters
  '0': 'o',
  '1': 'l',
};

/**
 * A comparison key under which look-alike names are equal: compatibility-normalized (fullwidth
 * and other compatibility forms become plain letters), lowercased, invisible characters and
 * combining marks dropped, look-alike letters mapped to Latin.
 */
export function confusableSkeleton(value: string): string {
  const folded = value
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[\p{M}\p{Cf}\p{Cc}\p{Default_Ignorable_Code_Point}\s]/gu, '');
  let out = '';
  for (const ch of folded) out += LATIN_LOOK_ALIKES[ch] ?? ch;
  return out;
}

/** True when the name is, or looks like, the reserved name (for example `Everyone`). */
export function looksLike(value: string, reserved: string): boolean {
  return confusableSkeleton(value) === confusableSkeleton(reserved);
}
