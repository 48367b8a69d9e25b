// A calculator the model can call during GRPO rollouts: `hayate train ... --tools examples/calculator-tool/tools.js`.
// The model writes <tool_call>{"name": "calculate", "arguments": {"expression": "12 * (3 + 4)"}}</tool_call>
// and reads the result back as a tool message. Only arithmetic is evaluated (no JavaScript eval).

/** Evaluates + - * / and parentheses over decimal numbers, left to right with the usual precedence. */
export function evaluateArithmetic(text) {
  const tokens = String(text).match(/\d+(?:\.\d+)?|[-+*/()]/g);
  if (!tokens || tokens.join('') !== String(text).replace(/\s+/g, '')) throw new Error(`not an arithmetic expression: ${text}`);
  let i = 0;
  const peek = () => tokens[i];
  const next = () => tokens[i++];
  function factor() {
    const t = next();
    if (t === '(') {
      const v = expr();
      if (next() !== ')') throw new Error('missing )');
      return v;
    }
    if (t === '-') return -factor();
    if (t === undefined || !/^\d/.test(t)) throw new Error(`unexpected ${t ?? 'end of expression'}`);
    return Number(t);
  }
  function term() {
    let v = factor();
    while (peek() === '*' || peek() === '/') v = next() === '*' ? v * factor() : v / factor();
    return v;
  }
  function expr() {
    let v = term();
    while (peek() === '+' || peek() === '-') v = next() === '+' ? v + term() : v - term();
    return v;
  }
  const v = expr();
  if (i !== tokens.length) throw new Error(`unexpected ${tokens[i]}`);
  if (!Number.isFinite(v)) throw new Error('the result is not a finite number');
  return v;
}

export function calculate({ expression }) {
  return String(evaluateArithmetic(expression));
}
calculate.schema = {
  description: 'Evaluate an arithmetic expression (+, -, *, / and parentheses) and return its value.',
  parameters: {
    type: 'object',
    properties: { expression: { type: 'string', description: 'e.g. "12 * (3 + 4)"' } },
    required: ['expression'],
  },
};
