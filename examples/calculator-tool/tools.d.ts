// Types of tools.js for TypeScript users (and the project's type-checked tests).
export declare function evaluateArithmetic(text: string): number;
export declare function calculate(args: { expression: string }): string;
export declare namespace calculate {
  const schema: { description: string; parameters: Record<string, unknown> };
}
