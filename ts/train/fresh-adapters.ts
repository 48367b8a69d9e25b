// Which adapters a trainer trains: the fresh ones `lora` describes, else those already attached to the
// model (loaded from a PEFT directory, or an earlier run's), else fresh ones with LORA_DEFAULTS. Fresh
// adapters are seeded with the run's seed unless lora.seed says otherwise.
import type { LoraOptions, Model } from '../model.js';
import { LORA_DEFAULTS } from '../training-defaults.js';

/** The LoRA options TrainerCore.create should attach, or undefined to train the model's attached adapters. */
export function adaptersToAttach(model: Model, lora: LoraOptions | undefined, seed: number): LoraOptions | undefined {
  const fresh = lora ?? (model.lora ? undefined : { rank: LORA_DEFAULTS.rank, alpha: LORA_DEFAULTS.alpha, rslora: LORA_DEFAULTS.rslora });
  return fresh ? { seed, ...fresh } : undefined;
}
