// PyTorch checkpoint reader: the state dict that torch.save wrote (pytorch_model.bin, open_clip's *.bin / *.pth),
// read the way transformers loads it, without Python and without executing anything.
//
// Formats:
//   zip (torch.save since PyTorch 1.6): <archive>/data.pkl (the pickle), <archive>/data/<key> (one record per
//     storage), <archive>/byteorder ("little"; absent in old files), <archive>/version. Records that the zip
//     stores uncompressed at an offset aligned to their element size are used in place (memory-mapped, zero
//     copy; torch aligns them to 64 bytes); compressed or unaligned records are copied (deflate: CRC checked).
//   legacy (_use_new_zipfile_serialization=False): pickles of the magic number, the protocol version (1001),
//     sys_info (little_endian must be true), the state dict, the list of storage keys; then for each key in that
//     order an 8-byte little-endian element count and the storage's bytes (copied unless aligned).
// The pickle is read by a restricted unpickler (opcodes of protocols 2-5) that builds plain data only: dicts
// (also collections.OrderedDict), lists, tuples, ints, floats, strings, bools, None, tensors
// (torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter[_with_state]) and the torch.*Storage
// types of persistent ids; torch.serialization._get_layout and torch.device are accepted as inert markers. Any
// other global (os.system, builtins.eval, ...) is refused when the pickle names it, before anything could call it.
// Limits: nesting depth 200, 8M objects, strings and records bounded by the bytes actually present.
//
// The top object must be a state dict: {name: tensor}, or a dict holding one under "state_dict" (open_clip's
// training checkpoints). Tensors of any dtype come through (F32/F16/BF16, integer buffers such as position_ids);
// non-contiguous ones are copied into a contiguous buffer.
//
// Every failure is a zeroshot::Error naming the file and the problem (truncated zip, missing record, a storage
// record past the end of the file, unknown storage type, size/stride outside the storage, big-endian data, ...).
// Thread safety: none needed; the function shares no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace zeroshot::io {

struct LoadedTensor {
  TensorView view;                    // view.file: the checkpoint path
  std::shared_ptr<const void> owner;  // keeps view.data alive (the mapped file or a copy)
  bool in_place = false;              // view.data points into the memory-mapped checkpoint
};

// Reads every tensor of the state dict in the checkpoint at `path` (zip or legacy format).
std::vector<LoadedTensor> read_torch_checkpoint(const std::string& path);

// True when the first bytes (at least 9) of a file are those of a torch.save checkpoint: a zip archive, or the
// legacy format's first pickle (protocol 2-5) and not a safetensors header.
bool is_torch_checkpoint(const uint8_t* head, size_t n);

}  // namespace zeroshot::io
