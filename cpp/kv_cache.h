// Paged KV cache: per layer, K and V live in [num_blocks * block_size, kv_heads * head_dim] buffers on the
// backend; a sequence owns a list of block ids. Blocks are reference-counted so the n samples of one
// prompt share the prompt's full blocks (prefill once, not n times); only a partially filled last block
// is copied when a sequence forks.
#pragma once
#include <vector>

#include "backend.h"
#include "model_config.h"

namespace hayate {

class KvCache {
 public:
  KvCache(Backend& be, const ModelConfig& cfg, int num_blocks, int block_size);

  int block_size() const { return block_size_; }
  int num_blocks() const { return num_blocks_; }
  int free_blocks() const { return static_cast<int>(free_.size()); }
  // Bytes one block takes over all layers (K and V).
  static size_t block_bytes(Backend& be, const ModelConfig& cfg, int block_size);

  int allocate();             // a free block with refcount 1; throws kContextOverflow when none is left
  void retain(int block);     // one more owner
  void release(int block);    // one owner less; the block is free again at zero
  // Copies the first `rows` token rows of block src into block dst, in every layer.
  void copy_rows(int dst, int src, int rows);

  Tensor k(int layer) const { return k_[layer]; }
  Tensor v(int layer) const { return v_[layer]; }

 private:
  Backend& be_;
  int block_size_;
  int num_blocks_;
  int64_t row_elems_;
  std::vector<Buffer> k_, v_;
  std::vector<int> refcount_;
  std::vector<int> free_;
};

}  // namespace hayate
