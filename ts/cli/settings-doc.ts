// README.md's table of `hayate train` settings, generated from TRAIN_SETTINGS (and so from the defaults of
// training-defaults.ts) so that the two cannot drift: settingsTable() renders the table and
// replaceSettingsTable() rewrites the README section between the marker comments. `npm run docs:settings`
// applies it; a test fails when README.md differs from what it gives.
import { HayateError } from '../errors.js';
import { TRAIN_SETTINGS, showNumber, type Setting } from './train-config.js';

export const SETTINGS_TABLE_BEGIN = '<!-- train-settings:begin (generated from ts/cli/train-config.ts by `npm run docs:settings`; do not edit) -->';
export const SETTINGS_TABLE_END = '<!-- train-settings:end -->';

function flagCell(s: Setting): string {
  const short = s.short ? `-${s.short}, ` : '';
  if (s.type === 'bool') return `${short}--${s.default === true ? 'no-' : ''}${s.flag}`;
  const arg = s.type === 'resume' ? '[dir]' : s.type === 'list' || s.type === 'numlist' ? '<list>' : s.type === 'int' ? '<n>' : s.type === 'float' ? '<x>' : '<v>';
  return `${short}--${s.flag} ${arg}`;
}

function defaultCell(s: Setting): string {
  if (s.defaultText !== undefined) return s.defaultText;
  if (s.default === undefined) return '';
  return typeof s.default === 'number' ? showNumber(s.default) : String(s.default);
}

/** Markdown table cells may not hold a bare pipe. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** The settings table: flag, config key (with aliases), default, meaning; one row per setting. */
export function settingsTable(settings: readonly Setting[] = TRAIN_SETTINGS): string {
  const rows = settings.map((s) => {
    const key = s.aliases && s.aliases.length > 0 ? `${s.key} (also ${s.aliases.join(', ')})` : s.key;
    return `| \`${flagCell(s)}\` | \`${key}\` | ${cell(defaultCell(s))} | ${cell(s.description)} |`;
  });
  return ['| flag | config key | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** `readme` with the section between the markers replaced by the generated table. */
export function replaceSettingsTable(readme: string, table: string = settingsTable()): string {
  const begin = readme.indexOf(SETTINGS_TABLE_BEGIN);
  const end = readme.indexOf(SETTINGS_TABLE_END);
  if (begin < 0 || end < begin) throw new HayateError('ERR_INVALID_ARGUMENT', `README.md lacks the settings-table markers ${SETTINGS_TABLE_BEGIN} ... ${SETTINGS_TABLE_END}`);
  return `${readme.slice(0, begin + SETTINGS_TABLE_BEGIN.length)}\n${table}\n${readme.slice(end)}`;
}
