#include "kv_cache.h"

namespace hayate {

KvCache::KvCache(Backend& be, const ModelConfig& cfg, int num_blocks, int block_size)
    : be_(be), block_size_(block_size), num_blocks_(num_blocks),
      row_elems_(static_cast<int64_t>(cfg.num_kv_heads) * cfg.head_dim) {
  HAYATE_CHECK(num_blocks > 0 && block_size > 0, ErrorCode::kInvalidArgument, "KV cache needs at least one block");
  int64_t rows = static_cast<int64_t>(num_blocks) * block_size;
  for (int l = 0; l < cfg.num_layers; ++l) {
    k_.emplace_back(be, be.activation_dtype(), std::initializer_list<int64_t>{rows, row_elems_});
    v_.emplace_back(be, be.activation_dtype(), std::initializer_list<int64_t>{rows, row_elems_});
  }
  refcount_.assign(num_blocks, 0);
  free_.reserve(num_blocks);
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out low ids first
}

size_t KvCache::block_bytes(Backend& be, const ModelConfig& cfg, int block_size) {
  return static_cast<size_t>(cfg.num_layers) * 2 * block_size * cfg.num_kv_heads * cfg.head_dim *
         dtype_size(be.activation_dtype());
}

int KvCache::allocate() {
  HAYATE_CHECK(!free_.empty(), ErrorCode::kContextOverflow, "KV cache is full");
  int b = free_.back();
  free_.pop_back();
  refcount_[b] = 1;
  return b;
}

void KvCache::retain(int block) {
  HAYATE_CHECK(block >= 0 && block < num_blocks_ && refcount_[block] > 0, ErrorCode::kInternal, "retain of a free block");
  ++refcount_[block];
}

void KvCache::release(int block) {
  HAYATE_CHECK(block >= 0 && block < num_blocks_ && refcount_[block] > 0, ErrorCode::kInternal, "release of a free block");
  if (--refcount_[block] == 0) free_.push_back(block);
}

void KvCache::copy_rows(int dst, int src, int rows) {
  size_t esize = dtype_size(be_.activation_dtype());
  size_t row_bytes = static_cast<size_t>(row_elems_) * esize;
  for (size_t l = 0; l < k_.size(); ++l) {
    for (const Buffer* buf : {&k_[l], &v_[l]}) {
      char* base = static_cast<char*>(buf->t().data);
      be_.copy(base + static_cast<size_t>(dst) * block_size_ * row_bytes,
               base + static_cast<size_t>(src) * block_size_ * row_bytes, rows * row_bytes);
    }
  }
}

}  // namespace hayate
