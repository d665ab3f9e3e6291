// PyTorch checkpoints (see torch_checkpoint.h). The unpickler is our own: no C++ library reads pickles, and the
// ones embedded in Python runtimes would execute what they read. It follows pickle.py's _Unpickler (a stack, a
// metastack for MARK, a memo) but builds only inert values, and torch.serialization's load for the layouts.
// The zip container is read with minizip (Debian libminizip), which also gives the file offset of a stored record
// so the record can be used in place.
#include "io/torch_checkpoint.h"

#include <minizip/unzip.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <unordered_map>

#include "util/mapped_file.h"
#include "zeroshot/error.h"

namespace zeroshot::io {
namespace {

constexpr int kMaxDepth = 200;
constexpr size_t kMaxObjects = 8u << 20;
// Deflate cannot compress better than about 1032:1; a record claiming more is corrupt (or a zip bomb).
constexpr uint64_t kMaxDeflateRatio = 1032;

// ------------------------------------------------------------------------------------------------------------
// Values the unpickler builds.

enum class Kind { None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict, Set, Global, Marker, Storage, Tensor };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int:
    case Kind::BigInt: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Set: return "set";
    case Kind::Global: return "global";
    case Kind::Marker: return "torch layout/device";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

struct Obj;
using Ref = std::shared_ptr<Obj>;

struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;           // Int, Bool
  double f = 0;            // Float
  std::string s;           // Str, Bytes, BigInt (little-endian two's complement), Global ("module.name")
  std::vector<Ref> items;  // Tuple, List, Set; Dict: key, value, key, value, ...
  std::unordered_map<std::string, size_t> str_keys;  // Dict: string key -> index of its value in items
  // A container stored inside another is never mutated again: Python's pickler writes a container's items before
  // using it, so only a recursive structure would, and refusing that rules out reference cycles.
  bool held = false;
  int depth = 1;
  // Storage
  DType dtype = DType::F32;
  std::string key;
  int64_t numel = -1;  // from the persistent id (zip) or the record header (legacy)
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<const void> owner;
  bool in_place = false;
  bool resolved = false;
  // Tensor
  Ref storage;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

bool parse_storage_type(const std::string& global, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"torch.FloatStorage", DType::F32},  {"torch.HalfStorage", DType::F16}, {"torch.BFloat16Storage", DType::BF16},
      {"torch.DoubleStorage", DType::F64}, {"torch.LongStorage", DType::I64}, {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},  {"torch.CharStorage", DType::I8},  {"torch.ByteStorage", DType::U8},
      {"torch.BoolStorage", DType::BOOL}};
  for (const auto& [name, t] : table)
    if (global == name) {
      *out = t;
      return true;
    }
  return false;
}

// The only globals a state dict needs. Storage types are checked separately (any torch.*Storage is a name; an
// unknown one is refused where its persistent id is read, with a clearer message).
bool allowed_global(const std::string& g) {
  static const char* names[] = {"collections.OrderedDict",
                                "torch._utils._rebuild_tensor_v2",
                                "torch._utils._rebuild_tensor",
                                "torch._utils._rebuild_parameter",
                                "torch._utils._rebuild_parameter_with_state",
                                "torch.serialization._get_layout",
                                "torch.device"};
  for (const char* n : names)
    if (g == n) return true;
  return g.rfind("torch.", 0) == 0 && g.size() > 13 && g.find('.', 6) == std::string::npos &&
         g.compare(g.size() - 7, 7, "Storage") == 0;
}

// ------------------------------------------------------------------------------------------------------------
// The unpickler.

enum class Layout { Zip, Legacy };

class Unpickler {
 public:
  Unpickler(const std::string& path, const std::string& where, Layout layout, std::map<std::string, Ref>* storages)
      : path_(path), where_(where), layout_(layout), storages_(storages) {}

  // Reads one pickle from data[0, n); returns the object and sets *end to the offset after STOP.
  Ref load(const uint8_t* data, size_t n, size_t* end) {
    p_ = data;
    n_ = n;
    pos_ = 0;
    stack_.clear();
    meta_.clear();
    memo_.clear();
    for (;;) {
      const size_t at = pos_;
      const uint8_t op = byte();
      switch (op) {
        case 0x80: {  // PROTO
          uint8_t v = byte();
          if (v > 5) fail("pickle protocol " + std::to_string(v) + " is newer than 5");
          break;
        }
        case 0x95: take(8); break;  // FRAME: a hint for buffered readers
        case '.': {                 // STOP
          Ref r = pop();
          *end = pos_;
          return r;
        }
        case '(':  // MARK
          meta_.push_back(std::move(stack_));
          stack_.clear();
          break;
        case '0':  // POP
          if (!stack_.empty()) stack_.pop_back();
          else pop_mark();
          break;
        case '1': pop_mark(); break;   // POP_MARK
        case '2': push(top()); break;  // DUP
        case 'N': push(make(Kind::None)); break;
        case 0x88: push(make_int(1, Kind::Bool)); break;  // NEWTRUE
        case 0x89: push(make_int(0, Kind::Bool)); break;  // NEWFALSE
        case 'J': {                                       // BININT
          uint32_t v = static_cast<uint32_t>(le(4));
          push(make_int(static_cast<int32_t>(v)));
          break;
        }
        case 'K': push(make_int(byte())); break;                       // BININT1
        case 'M': push(make_int(static_cast<int64_t>(le(2)))); break;  // BININT2
        case 0x8a: push_long(byte()); break;                           // LONG1
        case 0x8b: push_long(checked_len(le(4), "LONG4")); break;      // LONG4
        case 'G': {                                                    // BINFLOAT (big-endian)
          const uint8_t* b = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = bits << 8 | b[k];
          Ref o = make(Kind::Float);
          std::memcpy(&o->f, &bits, 8);
          push(o);
          break;
        }
        case 'X': push_str(Kind::Str, le(4)); break;     // BINUNICODE
        case 0x8c: push_str(Kind::Str, byte()); break;   // SHORT_BINUNICODE
        case 0x8d: push_str(Kind::Str, le(8)); break;    // BINUNICODE8
        case 'T': push_str(Kind::Str, le(4)); break;     // BINSTRING (Python 2 str, read as text)
        case 'U': push_str(Kind::Str, byte()); break;    // SHORT_BINSTRING
        case 'B': push_str(Kind::Bytes, le(4)); break;   // BINBYTES
        case 'C': push_str(Kind::Bytes, byte()); break;  // SHORT_BINBYTES
        case 0x8e:                                       // BINBYTES8
        case 0x96: push_str(Kind::Bytes, le(8)); break;  // BYTEARRAY8
        case ')': push(make(Kind::Tuple)); break;        // EMPTY_TUPLE
        case 't': push(make_seq(Kind::Tuple, pop_mark())); break;
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          size_t k = static_cast<size_t>(op - 0x84);
          if (stack_.size() < k) fail("stack underflow");
          std::vector<Ref> items(stack_.end() - static_cast<ptrdiff_t>(k), stack_.end());
          stack_.resize(stack_.size() - k);
          push(make_seq(Kind::Tuple, std::move(items)));
          break;
        }
        case ']': push(make(Kind::List)); break;  // EMPTY_LIST
        case 'l': push(make_seq(Kind::List, pop_mark())); break;
        case 'a': {  // APPEND
          Ref v = pop();
          append(top(), Kind::List, std::move(v));
          break;
        }
        case 'e': {  // APPENDS
          std::vector<Ref> items = pop_mark();
          Ref target = top();
          for (auto& v : items) append(target, Kind::List, std::move(v));
          break;
        }
        case '}': push(make(Kind::Dict)); break;  // EMPTY_DICT
        case 'd': {                               // DICT
          std::vector<Ref> items = pop_mark();
          if (items.size() % 2) fail("DICT with an odd number of items");
          Ref d = make(Kind::Dict);
          for (size_t k = 0; k < items.size(); k += 2) set_item(d, items[k], items[k + 1]);
          push(d);
          break;
        }
        case 's': {  // SETITEM
          Ref v = pop();
          Ref k = pop();
          set_item(top(), k, v);
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<Ref> items = pop_mark();
          if (items.size() % 2) fail("SETITEMS with an odd number of items");
          Ref d = top();
          for (size_t k = 0; k < items.size(); k += 2) set_item(d, items[k], items[k + 1]);
          break;
        }
        case 0x8f: push(make(Kind::Set)); break;  // EMPTY_SET
        case 0x90: {                              // ADDITEMS
          std::vector<Ref> items = pop_mark();
          Ref target = top();
          for (auto& v : items) append(target, Kind::Set, std::move(v));
          break;
        }
        case 0x91: push(make_seq(Kind::Set, pop_mark())); break;  // FROZENSET
        case 'h': push(memo_get(byte())); break;                  // BINGET
        case 'j': push(memo_get(le(4))); break;                   // LONG_BINGET
        case 'q': memo_[byte()] = top(); break;                   // BINPUT
        case 'r': memo_[le(4)] = top(); break;                    // LONG_BINPUT
        case 0x94: {                                              // MEMOIZE
          uint64_t k = memo_.size();
          memo_[k] = top();
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          std::string module = line();
          std::string name = line();
          push(make_global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Ref name = pop();
          Ref module = pop();
          if (module->kind != Kind::Str || name->kind != Kind::Str) fail("STACK_GLOBAL of a non-string");
          push(make_global(module->s, name->s));
          break;
        }
        case 'R': {  // REDUCE
          Ref args = pop();
          Ref fn = pop();
          push(call(fn, args));
          break;
        }
        case 0x81: {  // NEWOBJ: cls.__new__(cls, *args); only OrderedDict gets here legitimately
          Ref args = pop();
          Ref cls = pop();
          if (cls->kind != Kind::Global || cls->s != "collections.OrderedDict")
            fail("NEWOBJ of " + (cls->kind == Kind::Global ? cls->s : std::string(kind_name(cls->kind))));
          push(make(Kind::Dict));
          break;
        }
        case 'b': {  // BUILD: sets attributes (a state dict's _metadata); nothing we keep
          Ref state = pop();
          Ref target = top();
          if (target->kind != Kind::Dict && target->kind != Kind::Tensor)
            fail(std::string("BUILD on a ") + kind_name(target->kind));
          break;
        }
        case 'Q': {  // BINPERSID
          Ref pid = pop();
          push(persistent_load(pid));
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("unsupported pickle opcode ") + hex + " at offset " + std::to_string(at) +
               " (not a PyTorch state dict)");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error(path_, where_ + ": " + what); }

  uint8_t byte() {
    if (pos_ >= n_) fail("truncated pickle (ends without STOP)");
    return p_[pos_++];
  }
  const uint8_t* take(uint64_t k) {
    if (k > n_ - pos_)
      fail("truncated pickle: " + std::to_string(k) + " bytes needed at offset " + std::to_string(pos_) + ", " +
           std::to_string(n_ - pos_) + " left");
    const uint8_t* r = p_ + pos_;
    pos_ += k;
    return r;
  }
  uint64_t le(int bytes) {
    const uint8_t* b = take(static_cast<uint64_t>(bytes));
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = v << 8 | b[k];
    return v;
  }
  uint64_t checked_len(uint64_t k, const char* op) {
    if (k > n_ - pos_) fail(std::string(op) + " of " + std::to_string(k) + " bytes runs past the end of the pickle");
    return k;
  }
  std::string line() {
    std::string s;
    for (;;) {
      uint8_t c = byte();
      if (c == '\n') return s;
      if (s.size() > 256) fail("GLOBAL name longer than 256 bytes");
      s += static_cast<char>(c);
    }
  }

  Ref make(Kind k) {
    if (++objects_ > kMaxObjects) fail("more than " + std::to_string(kMaxObjects) + " objects");
    Ref o = std::make_shared<Obj>();
    o->kind = k;
    return o;
  }
  Ref make_int(int64_t v, Kind k = Kind::Int) {
    Ref o = make(k);
    o->i = v;
    return o;
  }
  void push(Ref o) { stack_.push_back(std::move(o)); }
  Ref pop() {
    if (stack_.empty()) fail("stack underflow");
    Ref r = std::move(stack_.back());
    stack_.pop_back();
    return r;
  }
  const Ref& top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (meta_.empty()) fail("no MARK on the stack");
    std::vector<Ref> items = std::move(stack_);
    stack_ = std::move(meta_.back());
    meta_.pop_back();
    return items;
  }
  Ref memo_get(uint64_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail("memo key " + std::to_string(k) + " used before it was stored");
    return it->second;
  }

  void push_str(Kind k, uint64_t len) {
    checked_len(len, k == Kind::Str ? "string" : "bytes");
    Ref o = make(k);
    const uint8_t* b = take(len);
    o->s.assign(reinterpret_cast<const char*>(b), len);
    push(o);
  }
  void push_long(uint64_t len) {
    const uint8_t* b = take(len);
    if (len <= 8) {
      uint64_t v = 0;
      for (uint64_t k = len; k-- > 0;) v = v << 8 | b[k];
      if (len > 0 && len < 8 && (b[len - 1] & 0x80)) v |= ~uint64_t{0} << (8 * len);  // sign-extend
      push(make_int(static_cast<int64_t>(v)));
    } else {
      Ref o = make(Kind::BigInt);
      o->s.assign(reinterpret_cast<const char*>(b), len);
      push(o);
    }
  }

  // Stores `child` in `parent` (a new tuple, list, set or dict): the child may not be mutated afterwards.
  void adopt(Obj& parent, const Ref& child) {
    if (child.get() == &parent) fail("a container that contains itself");
    child->held = true;
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxDepth) fail("objects nested deeper than " + std::to_string(kMaxDepth) + " levels");
  }
  Ref make_seq(Kind k, std::vector<Ref> items) {
    Ref o = make(k);
    for (const Ref& c : items) adopt(*o, c);
    o->items = std::move(items);
    return o;
  }
  void mutable_container(const Ref& target, Kind k) {
    if (target->kind != k && !(k == Kind::List && target->kind == Kind::Set))
      fail(std::string("cannot add items to a ") + kind_name(target->kind));
    if (target->held) fail("a container modified after it was stored (recursive structure)");
  }
  void append(const Ref& target, Kind k, Ref v) {
    mutable_container(target, k);
    adopt(*target, v);
    target->items.push_back(std::move(v));
  }
  void set_item(const Ref& d, const Ref& k, const Ref& v) {
    mutable_container(d, Kind::Dict);
    adopt(*d, k);
    adopt(*d, v);
    if (k->kind == Kind::Str) {
      auto [it, fresh] = d->str_keys.emplace(k->s, d->items.size() + 1);
      if (!fresh) {  // Python keeps the first key and the last value
        d->items[it->second] = v;
        return;
      }
    }
    d->items.push_back(k);
    d->items.push_back(v);
  }

  Ref make_global(const std::string& module, const std::string& name) {
    // Protocol 2 writes Python 2 module names; name them as Python 3 resolves them (pickle's fix_imports).
    std::string g = (module == "__builtin__" ? "builtins" : module == "copy_reg" ? "copyreg" : module) + "." + name;
    if (!allowed_global(g))
      throw Error(path_, where_ + ": the pickle refers to " + g +
                             ", which a state dict never needs; refusing to load it (nothing was executed)");
    Ref o = make(Kind::Global);
    o->s = std::move(g);
    return o;
  }

  static bool is_int(const Ref& o) { return o->kind == Kind::Int; }
  std::vector<int64_t> int_tuple(const Ref& o, const char* what) {
    if (o->kind != Kind::Tuple) fail(std::string("tensor ") + what + " is a " + kind_name(o->kind) + ", not a tuple");
    std::vector<int64_t> v;
    for (const Ref& x : o->items) {
      if (!is_int(x)) fail(std::string("tensor ") + what + " holds a " + kind_name(x->kind));
      v.push_back(x->i);
    }
    return v;
  }

  Ref call(const Ref& fn, const Ref& args) {
    if (fn->kind != Kind::Global) fail(std::string("REDUCE calls a ") + kind_name(fn->kind));
    if (args->kind != Kind::Tuple) fail("REDUCE arguments are not a tuple");
    const std::vector<Ref>& a = args->items;
    const std::string& g = fn->s;
    if (g == "collections.OrderedDict") {
      Ref d = make(Kind::Dict);
      if (a.empty()) return d;
      if (a.size() != 1 || (a[0]->kind != Kind::List && a[0]->kind != Kind::Tuple))
        fail("OrderedDict called with unexpected arguments");
      for (const Ref& pair : a[0]->items) {
        if (pair->kind != Kind::Tuple || pair->items.size() != 2) fail("OrderedDict item is not a pair");
        set_item(d, pair->items[0], pair->items[1]);
      }
      return d;
    }
    if (g == "torch._utils._rebuild_tensor_v2" || g == "torch._utils._rebuild_tensor") {
      // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
      const bool v2 = g.back() == '2';
      if (v2 ? (a.size() != 6 && a.size() != 7) : a.size() != 4)
        fail(g + " called with " + std::to_string(a.size()) + " arguments");
      if (a[0]->kind != Kind::Storage) fail(g + ": first argument is a " + kind_name(a[0]->kind) + ", not a storage");
      if (!is_int(a[1])) fail(g + ": storage offset is not an int");
      Ref t = make(Kind::Tensor);
      t->storage = a[0];
      t->offset = a[1]->i;
      t->size = int_tuple(a[2], "size");
      t->stride = int_tuple(a[3], "stride");
      return t;
    }
    if (g == "torch._utils._rebuild_parameter" || g == "torch._utils._rebuild_parameter_with_state") {
      if (a.size() < 3 || a.size() > 4 || a[0]->kind != Kind::Tensor) fail(g + " called with unexpected arguments");
      return a[0];  // a Parameter is its tensor; requires_grad and hooks do not matter for inference
    }
    if (g == "torch.serialization._get_layout" || g == "torch.device") {
      for (const Ref& x : a)
        if (x->kind != Kind::Str && x->kind != Kind::Int) fail(g + " called with a " + kind_name(x->kind));
      return make(Kind::Marker);
    }
    fail("the pickle calls " + g + ", which a state dict never calls");
  }

  Ref persistent_load(const Ref& pid) {
    // zip: ('storage', type, key, location, numel); legacy: the same + view_metadata (None since PyTorch 1.0).
    const size_t want = layout_ == Layout::Zip ? 5 : 6;
    if (pid->kind != Kind::Tuple || pid->items.size() != want || pid->items[0]->kind != Kind::Str ||
        pid->items[0]->s != "storage")
      fail(layout_ == Layout::Zip ? "persistent id is not a ('storage', type, key, location, numel) tuple"
                                  : "persistent id is not a ('storage', type, key, location, numel, view) tuple");
    const Ref& type = pid->items[1];
    const Ref& key = pid->items[2];
    const Ref& count = pid->items[4];
    if (type->kind != Kind::Global) fail("storage type is not a class");
    DType dt;
    if (!parse_storage_type(type->s, &dt)) fail("unknown storage type " + type->s);
    if (key->kind != Kind::Str) fail("storage key is not a string");
    if (!is_int(count) || count->i < 0) fail("storage " + key->s + " has no valid element count");
    const int64_t numel = count->i;
    if (layout_ == Layout::Legacy && pid->items[5]->kind != Kind::None)
      fail("storage " + key->s + " is a view (pre-1.0 legacy format), which is not supported");
    auto [it, fresh] = storages_->emplace(key->s, nullptr);
    if (fresh) {
      Ref s = make(Kind::Storage);
      s->dtype = dt;
      s->key = key->s;
      s->numel = numel;
      it->second = s;
    } else if (it->second->dtype != dt || it->second->numel != numel) {
      fail("storage " + key->s + " is declared twice with different types or sizes");
    }
    return it->second;
  }

  std::string path_, where_;
  Layout layout_;
  std::map<std::string, Ref>* storages_;
  const uint8_t* p_ = nullptr;
  size_t n_ = 0, pos_ = 0;
  std::vector<Ref> stack_;
  std::vector<std::vector<Ref>> meta_;
  std::unordered_map<uint64_t, Ref> memo_;
  size_t objects_ = 0;
};

// ------------------------------------------------------------------------------------------------------------
// From the unpickled object to tensors.

std::string shape_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

LoadedTensor make_tensor(const std::string& path, const std::string& name, const Obj& t) {
  const Obj& st = *t.storage;
  auto bad = [&](const std::string& what) { return Error(path, "tensor " + name + ": " + what); };
  if (!st.resolved) throw bad("storage " + st.key + " has no data");
  if (t.size.size() != t.stride.size())
    throw bad("size " + shape_str(t.size) + " and stride " + shape_str(t.stride) + " differ in length");
  const size_t es = dtype_size(st.dtype);
  // numel and the last element's index, with overflow checks: both must stay within the storage.
  constexpr int64_t kLimit = int64_t{1} << 52;
  int64_t numel = 1, last = t.offset;
  if (t.offset < 0) throw bad("negative storage offset");
  for (size_t d = 0; d < t.size.size(); ++d) {
    if (t.size[d] < 0 || t.stride[d] < 0) throw bad("negative size or stride");
    if (t.size[d] > kLimit || t.stride[d] > kLimit) throw bad("absurd size or stride");
    numel = t.size[d] == 0 ? 0 : (numel > kLimit / t.size[d] ? kLimit + 1 : numel * t.size[d]);
    if (numel > kLimit) throw bad("absurd size " + shape_str(t.size));
  }
  if (numel > 0) {
    for (size_t d = 0; d < t.size.size(); ++d) {
      if (t.size[d] > 1 && t.stride[d] > (kLimit - last) / (t.size[d] - 1)) throw bad("absurd stride");
      last += (t.size[d] - 1) * t.stride[d];
    }
    if (last >= st.numel)
      throw bad("size " + shape_str(t.size) + ", stride " + shape_str(t.stride) + " and offset " +
                std::to_string(t.offset) + " reach element " + std::to_string(last) + " of a storage of " +
                std::to_string(st.numel) + " elements");
  }
  LoadedTensor out;
  out.view.name = name;
  out.view.dtype = st.dtype;
  out.view.shape = t.size;
  out.view.file = path;
  out.view.nbytes = static_cast<size_t>(numel) * es;
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t d = t.size.size(); d-- > 0;) {
    if (t.size[d] != 1 && t.stride[d] != expect) contiguous = false;
    expect *= t.size[d];
  }
  if (numel == 0) {  // a valid pointer all the same: callers may pass it to memcpy/memcmp with length 0
    static const uint8_t kNoBytes[8] = {};
    out.view.data = kNoBytes;
    return out;
  }
  const uint8_t* base = st.data + static_cast<size_t>(t.offset) * es;
  if (contiguous) {
    out.view.data = base;
    out.owner = st.owner;
    out.in_place = st.in_place;
    return out;
  }
  // Strided (e.g. a transposed weight saved without .contiguous()): gather into row-major order.
  auto buf = std::make_shared<std::vector<uint8_t>>(out.view.nbytes);
  const size_t nd = t.size.size();
  std::vector<int64_t> idx(nd, 0);
  uint8_t* dst = buf->data();
  for (int64_t k = 0; k < numel; ++k) {
    int64_t off = 0;
    for (size_t d = 0; d < nd; ++d) off += idx[d] * t.stride[d];
    std::memcpy(dst, base + static_cast<size_t>(off) * es, es);
    dst += es;
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < t.size[d]) break;
      idx[d] = 0;
    }
  }
  out.view.data = buf->data();
  out.owner = std::move(buf);
  return out;
}

std::vector<LoadedTensor> state_dict_tensors(const std::string& path, const Ref& root) {
  if (root->kind != Kind::Dict)
    throw Error(path, std::string("the checkpoint holds a ") + kind_name(root->kind) + ", not a state dict");
  const Obj* dict = root.get();
  if (auto it = root->str_keys.find("state_dict"); it != root->str_keys.end()) {
    const Ref& inner = root->items[it->second];
    if (inner->kind != Kind::Dict) throw Error(path, "\"state_dict\" is not a dict");
    dict = inner.get();
  }
  std::vector<LoadedTensor> out;
  for (size_t k = 0; k < dict->items.size(); k += 2) {
    const Ref& key = dict->items[k];
    const Ref& v = dict->items[k + 1];
    if (key->kind != Kind::Str) throw Error(path, std::string("state dict key is a ") + kind_name(key->kind));
    if (v->kind == Kind::Dict)
      throw Error(path, "the tensors are nested under \"" + key->s +
                            "\"; zeroshot reads a plain state dict or one under \"state_dict\"");
    if (v->kind != Kind::Tensor)
      throw Error(path, "state dict entry " + key->s + " is a " + kind_name(v->kind) + ", not a tensor");
    out.push_back(make_tensor(path, key->s, *v));
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------------
// zip format

struct ZipEntry {
  unz64_file_pos pos{};
  unz_file_info64 info{};
};

// minizip reads through these callbacks from our mapping of the file: no seek/read system calls per record
// (stdio would issue a few per record, thousands for a large state dict), and the bytes it checks are the bytes
// the tensors then point into.
struct MemCursor {
  const uint8_t* data;
  uint64_t size;
  uint64_t pos = 0;
};

voidpf mem_open(voidpf opaque, const void*, int) {
  const auto* f = static_cast<const util::MappedFile*>(opaque);
  return new MemCursor{f->data(), f->size()};
}
uLong mem_read(voidpf, voidpf stream, void* buf, uLong size) {
  auto* c = static_cast<MemCursor*>(stream);
  const uint64_t n = c->pos >= c->size ? 0 : std::min<uint64_t>(size, c->size - c->pos);
  if (n) std::memcpy(buf, c->data + c->pos, n);
  c->pos += n;
  return static_cast<uLong>(n);
}
uLong mem_write(voidpf, voidpf, const void*, uLong) { return 0; }
ZPOS64_T mem_tell(voidpf, voidpf stream) { return static_cast<MemCursor*>(stream)->pos; }
long mem_seek(voidpf, voidpf stream, ZPOS64_T offset, int origin) {
  auto* c = static_cast<MemCursor*>(stream);
  uint64_t base = origin == ZLIB_FILEFUNC_SEEK_SET ? 0 : origin == ZLIB_FILEFUNC_SEEK_CUR ? c->pos : c->size;
  if (offset > UINT64_MAX - base) return -1;
  c->pos = base + offset;  // past the end is allowed, as with fseek; reads there return nothing
  return 0;
}
int mem_close(voidpf, voidpf stream) {
  delete static_cast<MemCursor*>(stream);
  return 0;
}
int mem_error(voidpf, voidpf) { return 0; }

class Zip {
 public:
  Zip(const std::string& path, const util::MappedFile& file) : path_(path) {
    zlib_filefunc64_def io{mem_open, mem_read,  mem_write, mem_tell,
                           mem_seek, mem_close, mem_error, const_cast<util::MappedFile*>(&file)};
    handle_.reset(unzOpen2_64(path.c_str(), &io));
    z_ = handle_.get();
    if (!z_) throw Error(path, "truncated or corrupt zip archive (no readable central directory)");
    int rc = unzGoToFirstFile(z_);
    while (rc == UNZ_OK) {
      ZipEntry e;
      if (unzGetCurrentFileInfo64(z_, &e.info, nullptr, 0, nullptr, 0, nullptr, 0) != UNZ_OK) break;
      if (e.info.size_filename > 4096) throw Error(path, "zip entry name longer than 4096 bytes");
      std::string name(e.info.size_filename, '\0');
      if (unzGetCurrentFileInfo64(z_, &e.info, name.data(), static_cast<uLong>(name.size()), nullptr, 0, nullptr, 0) !=
              UNZ_OK ||
          unzGetFilePos64(z_, &e.pos) != UNZ_OK)
        throw Error(path, "corrupt zip central directory");
      order_.push_back(name);
      entries_.emplace(std::move(name), e);
      rc = unzGoToNextFile(z_);
    }
    if (rc != UNZ_END_OF_LIST_OF_FILE) throw Error(path, "corrupt zip central directory");
  }
  Zip(const Zip&) = delete;
  Zip& operator=(const Zip&) = delete;

  const std::vector<std::string>& names() const { return order_; }
  const ZipEntry* find(const std::string& name) const {
    auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : &it->second;
  }

  // Positions minizip on `name` and opens it; checks the method and the sizes against the file.
  const ZipEntry& open(const std::string& name) {
    const ZipEntry* e = find(name);
    if (!e) throw Error(path_, "record " + name + " is missing from the zip");
    if (e->info.flag & 1) throw Error(path_, "record " + name + " is encrypted");
    if (e->info.compression_method != 0 && e->info.compression_method != Z_DEFLATED)
      throw Error(path_, "record " + name + " uses zip compression method " +
                             std::to_string(e->info.compression_method) + " (only stored and deflate are read)");
    if (e->info.compression_method == 0 && e->info.compressed_size != e->info.uncompressed_size)
      throw Error(path_, "record " + name + ": stored sizes disagree (corrupt zip)");
    if (e->info.uncompressed_size / kMaxDeflateRatio > e->info.compressed_size)
      throw Error(path_, "record " + name + " claims " + std::to_string(e->info.uncompressed_size) + " bytes from " +
                             std::to_string(e->info.compressed_size) + " (corrupt zip)");
    if (unzGoToFilePos64(z_, &e->pos) != UNZ_OK || unzOpenCurrentFile(z_) != UNZ_OK)
      throw Error(path_, "record " + name + ": corrupt local header (truncated zip?)");
    return *e;
  }
  // The file offset of the opened record's data.
  uint64_t data_offset() { return unzGetCurrentFileZStreamPos64(z_); }
  void close_current() { unzCloseCurrentFile(z_); }

  // The whole record, decompressed, CRC checked.
  std::vector<uint8_t> read(const std::string& name, uint64_t file_size) {
    const ZipEntry& e = open(name);
    const uint64_t n = e.info.uncompressed_size;
    if (e.info.compressed_size > file_size)
      fail_close("record " + name + " (" + std::to_string(e.info.compressed_size) +
                 " bytes) runs past the end of the file");
    std::vector<uint8_t> buf(n);
    uint64_t got = 0;
    while (got < n) {
      unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(n - got, 1u << 30));
      int r = unzReadCurrentFile(z_, buf.data() + got, chunk);
      if (r <= 0)
        fail_close("record " + name + " is truncated or corrupt (read " + std::to_string(got) + " of " +
                   std::to_string(n) + " bytes)");
      got += static_cast<uint64_t>(r);
    }
    uint8_t extra;
    if (unzReadCurrentFile(z_, &extra, 1) != 0) fail_close("record " + name + " holds more bytes than its header says");
    if (unzCloseCurrentFile(z_) != UNZ_OK) throw Error(path_, "record " + name + ": CRC mismatch (corrupt zip)");
    return buf;
  }

 private:
  [[noreturn]] void fail_close(const std::string& what) {
    unzCloseCurrentFile(z_);
    throw Error(path_, what);
  }
  struct Closer {
    void operator()(void* z) const { unzClose(z); }
  };
  std::string path_;
  std::unique_ptr<void, Closer> handle_;  // closed even when the constructor throws
  unzFile z_ = nullptr;
  std::map<std::string, ZipEntry> entries_;
  std::vector<std::string> order_;
};

std::vector<LoadedTensor> read_zip(const std::string& path) {
  auto file = std::make_shared<util::MappedFile>(path);
  Zip zip(path, *file);
  // torch names the records <archive>/...; the archive folder is whatever name the file was saved under.
  std::string prefix;
  for (const auto& n : zip.names()) {
    size_t slash = n.find('/');
    if (slash != std::string::npos && n.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = n.substr(0, slash + 1);
      break;
    }
  }
  if (prefix.empty()) throw Error(path, "zip archive has no <archive>/data.pkl record: not a PyTorch checkpoint");
  if (zip.find(prefix + "byteorder")) {
    std::vector<uint8_t> bo = zip.read(prefix + "byteorder", file->size());
    std::string order(bo.begin(), bo.end());
    if (order == "big") throw Error(path, "big-endian checkpoint (byteorder \"big\"): not supported");
    if (order != "little") throw Error(path, "unknown byteorder record \"" + order.substr(0, 16) + "\"");
  }
  std::vector<uint8_t> pkl = zip.read(prefix + "data.pkl", file->size());
  std::map<std::string, Ref> storages;
  size_t end = 0;
  Ref root = Unpickler(path, prefix + "data.pkl", Layout::Zip, &storages).load(pkl.data(), pkl.size(), &end);

  for (auto& [key, s] : storages) {
    const std::string rec = prefix + "data/" + key;
    if (!zip.find(rec)) throw Error(path, "data record " + rec + " named by the pickle is missing from the zip");
    const size_t es = dtype_size(s->dtype);
    const uint64_t want = static_cast<uint64_t>(s->numel);
    if (want > file->size() * kMaxDeflateRatio / es)
      throw Error(path,
                  "storage " + key + " claims " + std::to_string(s->numel) + " elements, more than the file can hold");
    const ZipEntry& e = zip.open(rec);
    if (e.info.uncompressed_size != want * es) {
      zip.close_current();
      throw Error(path, "data record " + rec + " holds " + std::to_string(e.info.uncompressed_size) + " bytes; its " +
                            dtype_name(s->dtype) + " storage of " + std::to_string(s->numel) + " elements needs " +
                            std::to_string(want * es));
    }
    if (e.info.compression_method == 0) {
      const uint64_t off = zip.data_offset();
      zip.close_current();
      if (off > file->size() || want * es > file->size() - off)
        throw Error(path, "data record " + rec + " (" + std::to_string(want * es) + " bytes at offset " +
                              std::to_string(off) + ") runs past the end of the " + std::to_string(file->size()) +
                              "-byte file");
      if (off % es == 0) {
        s->data = file->data() + off;
        s->nbytes = want * es;
        s->owner = file;
        s->in_place = true;
        s->resolved = true;
        continue;
      }
    } else {
      zip.close_current();
    }
    auto buf = std::make_shared<std::vector<uint8_t>>(zip.read(rec, file->size()));
    s->data = buf->data();
    s->nbytes = buf->size();
    s->owner = std::move(buf);
    s->resolved = true;
  }
  return state_dict_tensors(path, root);
}

// ------------------------------------------------------------------------------------------------------------
// legacy format

// 0x1950a86a20f9469cfc6c as pickle's LONG1 stores it (little-endian two's complement, 10 bytes).
const uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

std::vector<LoadedTensor> read_legacy(const std::string& path) {
  auto file = std::make_shared<util::MappedFile>(path);
  const uint8_t* p = file->data();
  const size_t size = file->size();
  std::map<std::string, Ref> storages, unused;  // only the state dict's pickle has persistent ids
  size_t pos = 0, end = 0;
  auto next = [&](const char* what, std::map<std::string, Ref>* into) {
    Ref r = Unpickler(path, what, Layout::Legacy, into).load(p + pos, size - pos, &end);
    pos += end;
    return r;
  };
  Ref magic = next("magic number", &unused);
  if (magic->kind != Kind::BigInt || magic->s != std::string(reinterpret_cast<const char*>(kLegacyMagic), 10))
    throw Error(path, "not a PyTorch checkpoint (wrong magic number)");
  Ref proto = next("protocol version", &unused);
  if (proto->kind != Kind::Int || proto->i != 1001)
    throw Error(path,
                "unsupported legacy protocol version " + (proto->kind == Kind::Int ? std::to_string(proto->i) : "?"));
  Ref sys = next("sys_info", &unused);
  if (sys->kind != Kind::Dict) throw Error(path, "sys_info is not a dict");
  if (auto it = sys->str_keys.find("little_endian"); it != sys->str_keys.end()) {
    const Ref& le = sys->items[it->second];
    if (le->kind != Kind::Bool || le->i != 1) throw Error(path, "big-endian checkpoint: not supported");
  }
  Ref root = next("state dict", &storages);
  Ref keys = next("storage keys", &unused);
  if (keys->kind != Kind::List) throw Error(path, "storage key list is not a list");
  for (const Ref& k : keys->items) {
    if (k->kind != Kind::Str) throw Error(path, "storage key is not a string");
    auto it = storages.find(k->s);
    if (it == storages.end()) throw Error(path, "storage " + k->s + " is listed but no tensor uses it");
    Obj& s = *it->second;
    if (s.resolved) throw Error(path, "storage " + k->s + " is listed twice");
    if (size - pos < 8)
      throw Error(path,
                  "storage record " + k->s + " at offset " + std::to_string(pos) + " runs past the end of the file");
    uint64_t numel = 0;
    for (int b = 7; b >= 0; --b) numel = numel << 8 | p[pos + static_cast<size_t>(b)];
    pos += 8;
    const size_t es = dtype_size(s.dtype);
    if (numel > (size - pos) / es)
      throw Error(path, "storage record " + k->s + " (" + std::to_string(numel) + " " + dtype_name(s.dtype) +
                            " elements at offset " + std::to_string(pos) + ") runs past the end of the " +
                            std::to_string(size) + "-byte file");
    if (numel != static_cast<uint64_t>(s.numel))
      throw Error(path, "storage record " + k->s + " holds " + std::to_string(numel) + " elements; the pickle says " +
                            std::to_string(s.numel));
    s.nbytes = numel * es;
    if (pos % es == 0) {
      s.data = p + pos;
      s.owner = file;
      s.in_place = true;
    } else {
      auto buf = std::make_shared<std::vector<uint8_t>>(p + pos, p + pos + s.nbytes);
      s.data = buf->data();
      s.owner = std::move(buf);
    }
    s.resolved = true;
    pos += s.nbytes;
  }
  for (const auto& [key, s] : storages)
    if (!s->resolved) throw Error(path, "storage " + key + " used by a tensor has no data record");
  return state_dict_tensors(path, root);
}

}  // namespace

bool is_torch_checkpoint(const uint8_t* head, size_t n) {
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return true;
  // The legacy format starts with a pickle (PROTO 2..5). A safetensors file can start with the same two bytes
  // (its header length), but has its JSON header's '{' at byte 8, where torch's legacy files have a byte of the
  // magic number (protocols 2, 3) or of a frame length (4, 5; 0 below 1 TB).
  return n >= 9 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5 && head[8] != '{';
}

std::vector<LoadedTensor> read_torch_checkpoint(const std::string& path) {
  uint8_t head[16] = {};
  size_t n = 0;
  {
    util::MappedFile f(path);
    n = std::min<size_t>(f.size(), sizeof head);
    if (n) std::memcpy(head, f.data(), n);
    if (f.size() == 0) throw Error(path, "empty file");
  }
  if (n >= 4 && head[0] == 'P' && head[1] == 'K') return read_zip(path);
  if (n >= 1 && head[0] == 0x80) return read_legacy(path);
  throw Error(path, "not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save pickle)");
}

}  // namespace zeroshot::io
