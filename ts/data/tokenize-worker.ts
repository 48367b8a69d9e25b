// Worker thread of the tokenization pool: encodes a chunk of texts with a tokenizer directory's tokenizer
// (loaded once per thread and kept).
import { HfTokenizer } from '../tokenizer.js';

export interface TokenizeTask {
  dir: string;
  texts: string[];
  addSpecialTokens: boolean;
}

const tokenizers = new Map<string, Promise<HfTokenizer>>();

export default async function tokenize(task: TokenizeTask): Promise<Int32Array[]> {
  let tok = tokenizers.get(task.dir);
  if (!tok) {
    tok = HfTokenizer.load(task.dir);
    tokenizers.set(task.dir, tok);
    tok.catch(() => tokenizers.delete(task.dir));
  }
  const tokenizer = await tok;
  return task.texts.map((t) => Int32Array.from(tokenizer.encode(t, { addSpecialTokens: task.addSpecialTokens })));
}
