// The tiny tokenizer: byte-level BPE whose merges are learned, deterministically, from a small built-in
// corpus of arithmetic word problems, so digits, common words and GSM8K-style answers get short encodings.
// init-model writes it as tokenizer.json / tokenizer_config.json for the `tiny` shape.
import { BYTE_TO_UNICODE } from './tokenizer.js';

const TINY_CORPUS = `Question: Mia has 12 apples. She gives 5 apples to her brother and buys 8 more. How many apples does she have now?
Answer: Mia starts with 12 apples. After giving away 5 she has 12 - 5 = 7 apples. Then she buys 8 more, so she has 7 + 8 = 15 apples. The answer is \\boxed{15}.
Question: A train travels 60 miles per hour for 3 hours. How far does the train travel?
Answer: The distance is the speed times the time: 60 * 3 = 180 miles. #### 180
Question: Tom reads 20 pages every day. How many days does he need to read a book of 140 pages?
Answer: He needs 140 / 20 = 7 days. The answer is \\boxed{7}.
Question: A shop sells pencils for $2 each and notebooks for $5 each. Sara buys 4 pencils and 3 notebooks. How much does she spend in total?
Answer: The pencils cost 4 * 2 = $8 and the notebooks cost 3 * 5 = $15, so the total is 8 + 15 = $23. The answer is \\boxed{23}.
Question: There are 30 students in a class. 40% of them are boys. How many girls are in the class?
Answer: The number of boys is 30 * 40 / 100 = 12. The number of girls is 30 - 12 = 18. <answer>18</answer>
Question: John earns $15 per hour and works 8 hours a day for 5 days. How much money does he earn in a week?
Answer: Each day he earns 15 * 8 = $120. In 5 days he earns 120 * 5 = $600. The answer is \\boxed{600}.
Question: A baker makes 48 cookies and puts them into boxes of 6. How many boxes does the baker fill?
Answer: The baker fills 48 / 6 = 8 boxes. #### 8
Question: Lisa is 3 years older than her brother. The sum of their ages is 25. How old is Lisa?
Answer: Let her brother be x years old. Then x + (x + 3) = 25, so 2x = 22 and x = 11. Lisa is 11 + 3 = 14 years old. The answer is \\boxed{14}.
Question: A farmer has 5 fields with 24 rows of corn in each field. Each row has 10 plants. How many corn plants does the farmer have?
Answer: There are 5 * 24 = 120 rows, and 120 * 10 = 1200 plants. The answer is \\boxed{1200}.
Question: A car uses 1 gallon of gas every 30 miles. How many gallons does it need for a trip of 450 miles?
Answer: It needs 450 / 30 = 15 gallons. The answer is \\boxed{15}.
Question: Ben had 50 dollars. He spent half of it on a game and 9 dollars on lunch. How many dollars are left?
Answer: Half of 50 is 50 / 2 = 25. After lunch he has 50 - 25 - 9 = 16 dollars left. The answer is \\boxed{16}.
Question: The price of a shirt is $40. It is on sale for 25% off. What is the sale price?
Answer: The discount is 40 * 25 / 100 = $10, so the sale price is 40 - 10 = $30. The answer is \\boxed{30}.
Question: A pool holds 2000 liters of water. A pump fills 250 liters per minute. How many minutes does it take to fill the pool?
Answer: It takes 2000 / 250 = 8 minutes. The answer is \\boxed{8}.
Question: Emma has twice as many marbles as Noah. Noah has 35 marbles. How many marbles do they have together?
Answer: Emma has 2 * 35 = 70 marbles. Together they have 70 + 35 = 105 marbles. The answer is \\boxed{105}.
Question: A rectangle is 9 meters long and 4 meters wide. What is its area and its perimeter?
Answer: The area is 9 * 4 = 36 square meters. The perimeter is 2 * (9 + 4) = 26 meters. The answer is \\boxed{36}.
Question: Each week a school uses 3 boxes of paper. Each box has 500 sheets. How many sheets are used in 6 weeks?
Answer: Each week uses 3 * 500 = 1500 sheets, so 6 weeks use 1500 * 6 = 9000 sheets. The answer is \\boxed{9000}.
`;

const TINY_MERGES = 200;
const TINY_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
/** GPT-2's pre-tokenization pattern, the one the ByteLevel pre-tokenizer applies with use_regex. */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const TINY_CHAT_TEMPLATE =
  "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

export interface TinyTokenizer {
  vocab: Map<string, number>;
  merges: string[];
  added: { id: number; content: string }[];
  size: number;
}

let tinyCache: TinyTokenizer | undefined;

/** Learns BPE merges over the corpus: repeatedly merge the most frequent adjacent pair (ties: smallest). */
function learnMerges(corpus: string, maxMerges: number): string[] {
  const utf8 = new TextEncoder();
  const counts = new Map<string, number>();
  for (const piece of corpus.match(GPT2_SPLIT) ?? []) {
    const symbols = Array.from(utf8.encode(piece), (b) => BYTE_TO_UNICODE[b]).join(' ');
    counts.set(symbols, (counts.get(symbols) ?? 0) + 1);
  }
  // Byte-level symbols never contain a space, so words are kept as space-separated symbol lists.
  const words = [...counts].map(([w, n]) => ({ symbols: w.split(' '), n }));
  const merges: string[] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const key = `${w.symbols[i]} ${w.symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + w.n);
      }
    }
    let best: string | undefined;
    let bestCount = 1; // a pair seen once is not worth a token
    for (const [key, n] of pairs) {
      if (n > bestCount || (n === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = n;
      }
    }
    if (best === undefined) break;
    merges.push(best);
    const [a, b] = best.split(' ');
    for (const w of words) {
      const merged: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else merged.push(w.symbols[i]);
      }
      w.symbols = merged;
    }
  }
  return merges;
}

export function tinyTokenizer(): TinyTokenizer {
  if (tinyCache) return tinyCache;
  const vocab = new Map<string, number>();
  BYTE_TO_UNICODE.forEach((ch) => vocab.set(ch, vocab.size));
  const merges = learnMerges(TINY_CORPUS, TINY_MERGES);
  for (const m of merges) {
    const token = m.replace(' ', '');
    if (!vocab.has(token)) vocab.set(token, vocab.size);
  }
  const added = TINY_SPECIAL_TOKENS.map((content, i) => ({ id: vocab.size + i, content }));
  tinyCache = { vocab, merges, added, size: vocab.size + added.length };
  return tinyCache;
}

/** tokenizer.json of the tiny tokenizer, in the format the Rust tokenizers library saves. */
export function tinyTokenizerJson(): Record<string, unknown> {
  const t = tinyTokenizer();
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: t.added.map(({ id, content }) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false, use_regex: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(t.vocab),
      merges: t.merges,
    },
  };
}

export function tinyTokenizerConfig(modelMaxLength: number): Record<string, unknown> {
  const t = tinyTokenizer();
  return {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(
      t.added.map(({ id, content }) => [String(id), { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }]),
    ),
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    chat_template: TINY_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: modelMaxLength,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: null,
  };
}
