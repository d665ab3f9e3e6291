#include "text/bpe_json_tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "io/json.h"
#include "text/bpe.h"
#include "text/text_normalize.h"
#include "zeroshot/error.h"

namespace zeroshot::text {

namespace fs = std::filesystem;

namespace {

// A JSON object's "type" (for messages and dispatch; "" when it has none).
std::string type_of(const io::Json& o) {
  return o.is_object() && o.contains("type") && o["type"].is_string() ? o["type"].get<std::string>() : "";
}

// Rust's char::is_whitespace (Unicode White_Space), which lstrip / rstrip / Strip use.
bool rust_whitespace(char32_t c) { return bpe::char_class(c) == bpe::CharClass::kSpace; }
// Rust's char::is_alphanumeric, as single_word tests it (approximated by the L* and N* categories).
bool rust_alnum(char32_t c) {
  const bpe::CharClass k = bpe::char_class(c);
  return k == bpe::CharClass::kLetter || k == bpe::CharClass::kNumber;
}

struct NormStep {
  enum Kind { kReplace, kPrepend, kLowercase, kStrip } kind;
  std::u32string pattern, content;
  bool left = false, right = false;  // Strip
};

void parse_normalizer(const io::Json& n, const std::string& file, std::vector<NormStep>& out) {
  if (n.is_null()) return;
  const std::string type = type_of(n);
  if (type.empty()) throw Error(file, "normalizer: expected an object with a \"type\"");
  auto str = [&](const io::Json& v, const char* what) {
    if (!v.is_string()) throw Error(file, std::string("normalizer ") + type + ": \"" + what + "\" must be a string");
    return decode_utf8_lossy(v.get<std::string>());
  };
  if (type == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array())
      throw Error(file, "normalizer Sequence: no \"normalizers\" list");
    for (const io::Json& m : n["normalizers"]) parse_normalizer(m, file, out);
  } else if (type == "Replace") {
    if (!n.contains("pattern") || !n["pattern"].is_object() || !n["pattern"].contains("String"))
      throw Error(file, "normalizer Replace: only a {\"String\": ...} pattern is supported (not a regex)");
    NormStep s{NormStep::kReplace, str(n["pattern"]["String"], "pattern"),
               str(n.value("content", io::Json()), "content")};
    if (s.pattern.empty()) throw Error(file, "normalizer Replace: empty pattern");
    out.push_back(std::move(s));
  } else if (type == "Prepend") {
    out.push_back({NormStep::kPrepend, {}, str(n.value("prepend", io::Json()), "prepend")});
  } else if (type == "Lowercase") {
    out.push_back({NormStep::kLowercase, {}, {}});
  } else if (type == "Strip") {
    NormStep s{NormStep::kStrip, {}, {}};
    for (const char* key : {"strip_left", "strip_right"})
      if (n.contains(key) && !n[key].is_boolean())
        throw Error(file, std::string("normalizer Strip: ") + key + " must be true or false");
    s.left = n.contains("strip_left") && n["strip_left"].get<bool>();
    s.right = n.contains("strip_right") && n["strip_right"].get<bool>();
    out.push_back(s);
  } else {
    throw Error(file,
                "normalizer type \"" + type + "\" is not supported (Replace, Prepend, Lowercase, Strip, Sequence are)");
  }
}

std::u32string normalize(const std::vector<NormStep>& steps, std::u32string s) {
  for (const NormStep& st : steps) {
    switch (st.kind) {
      case NormStep::kReplace: {
        std::u32string r;
        for (size_t i = 0; i < s.size();) {
          if (s.compare(i, st.pattern.size(), st.pattern) == 0) {
            r += st.content;
            i += st.pattern.size();
          } else {
            r += s[i++];
          }
        }
        s = std::move(r);
        break;
      }
      case NormStep::kPrepend:
        if (!s.empty()) s.insert(0, st.content);
        break;
      case NormStep::kLowercase: {  // char::to_lowercase, one code point at a time (no final-sigma rule)
        std::u32string r;
        for (char32_t c : s) r += python_lower(std::u32string_view(&c, 1));
        s = std::move(r);
        break;
      }
      case NormStep::kStrip: {
        size_t b = 0, e = s.size();
        if (st.left)
          while (b < e && rust_whitespace(s[b])) ++b;
        if (st.right)
          while (e > b && rust_whitespace(s[e - 1])) --e;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

struct Added {
  std::u32string pattern;  // the content (normalized first for normalized tokens)
  int32_t id;
  bool lstrip, rstrip, single_word;
};

// The added tokens of one kind, indexed by first code point, longest first.
struct AddedSet {
  std::unordered_map<char32_t, std::vector<Added>> by_first;
  std::unordered_set<std::u32string> seen;
  void add(Added a) {
    if (a.pattern.empty() || !seen.insert(a.pattern).second) return;  // the first entry of a spelling wins
    by_first[a.pattern[0]].push_back(std::move(a));
  }
  // After the last add(): longest first within each bucket (once: Gemma has thousands of tokens starting with '<').
  void finish() {
    for (auto& [c, v] : by_first)
      std::stable_sort(v.begin(), v.end(),
                       [](const Added& x, const Added& y) { return x.pattern.size() > y.pattern.size(); });
  }
  // `text` cut into pieces: (text, -1) or (token span, id), as AddedVocabulary::split_with_indices does.
  std::vector<std::pair<std::u32string, int32_t>> split(const std::u32string& text) const {
    std::vector<std::pair<std::u32string, int32_t>> out;
    if (by_first.empty()) {
      out.emplace_back(text, -1);
      return out;
    }
    size_t piece_start = 0, i = 0;
    while (i < text.size()) {
      const Added* hit = nullptr;
      if (auto it = by_first.find(text[i]); it != by_first.end())
        for (const Added& a : it->second)
          if (text.compare(i, a.pattern.size(), a.pattern) == 0) {
            hit = &a;
            break;
          }
      if (!hit) {
        ++i;
        continue;
      }
      size_t start = i, stop = i + hit->pattern.size();
      if (hit->single_word) {
        const bool before = start > 0 && rust_alnum(text[start - 1]);
        const bool after = stop < text.size() && rust_alnum(text[stop]);
        if (before || after) {  // not a match; the scan resumes after it
          i = stop;
          continue;
        }
      }
      if (hit->lstrip)
        while (start > piece_start && rust_whitespace(text[start - 1])) --start;
      if (hit->rstrip)
        while (stop < text.size() && rust_whitespace(text[stop])) ++stop;
      if (start > piece_start) out.emplace_back(text.substr(piece_start, start - piece_start), -1);
      out.emplace_back(std::u32string(), hit->id);
      piece_start = i = stop;
    }
    if (piece_start < text.size()) out.emplace_back(text.substr(piece_start), -1);
    return out;
  }
};

std::string spelling(const io::Json& v, const char* key, const std::string& file) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw Error(file, std::string(key) + " must be a string or {\"content\": string}");
}

}  // namespace

struct BpeJsonTokenizer::Impl {
  std::string file;
  bpe::Vocab vocab;
  bpe::MergeTable merges;
  std::unordered_map<std::string, int32_t> added_ids;  // every added token's content -> id
  AddedSet raw_added, normalized_added;
  std::vector<NormStep> normalizer;
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  int32_t unk = -1;
  std::vector<int32_t> prefix, suffix;  // the post-processor's special tokens around the text
  bool mask = true, left = false;
  int32_t pad = -1;
  size_t max_length = 64, n_ids = 0;
  std::array<int32_t, 256> byte_ids{};
  bool have_bytes = false;
  bpe::WordCache cache;

  int32_t token_id(const std::string& t) const {
    if (auto it = added_ids.find(t); it != added_ids.end()) return it->second;
    if (auto it = vocab.find(t); it != vocab.end()) return it->second;
    return -1;
  }

  // tokenizers' BPE::merge_word for one word (UTF-8), then the merges.
  void word_ids(const std::string& word, std::vector<int32_t>& ids) const {
    if (ignore_merges)
      if (auto it = vocab.find(word); it != vocab.end()) {
        ids.push_back(it->second);
        return;
      }
    int32_t pending_unk = -1;  // a (fused) unk not yet emitted
    const std::u32string chars = decode_utf8_lossy(word);
    std::string ch;
    for (char32_t c : chars) {
      ch.clear();
      append_utf8(ch, c);
      if (auto it = vocab.find(ch); it != vocab.end()) {
        if (pending_unk >= 0) ids.push_back(pending_unk);
        pending_unk = -1;
        ids.push_back(it->second);
        continue;
      }
      if (byte_fallback && have_bytes) {
        // As the reference: a pending unk is emitted only at the next vocabulary character (or the end).
        for (unsigned char b : ch) ids.push_back(byte_ids[b]);
        continue;
      }
      if (unk < 0) continue;  // no unk token: the character is dropped
      if (pending_unk >= 0 && !fuse_unk) ids.push_back(pending_unk);
      pending_unk = unk;
    }
    if (pending_unk >= 0) ids.push_back(pending_unk);
    merges.apply(ids);
  }
};

BpeJsonTokenizer::BpeJsonTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeJsonTokenizer::BpeJsonTokenizer(BpeJsonTokenizer&&) noexcept = default;
BpeJsonTokenizer& BpeJsonTokenizer::operator=(BpeJsonTokenizer&&) noexcept = default;
BpeJsonTokenizer::~BpeJsonTokenizer() = default;

BpeJsonTokenizer BpeJsonTokenizer::from_dir(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  const fs::path path = fs::path(dir) / "tokenizer.json";
  const std::string file = m.file = path.string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(file, "not found (this model's tokenizer is a tokenizer.json)");
  const io::Json j = io::load_json(file);
  if (!j.is_object()) throw Error(file, "not a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) throw Error(file, "no \"model\" object");
  const io::Json& model = j["model"];
  if (model.contains("type") && type_of(model) != "BPE")
    throw Error(file, "model type " + model["type"].dump() + " is not supported (only BPE, as Gemma's)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && !model[key].is_null() &&
        !(model[key].is_string() && model[key].get<std::string>().empty()))
      throw Error(file, std::string("model.") + key + " is not supported");
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0))
    throw Error(file, "model.dropout is not supported (encoding would be random)");
  bpe::Files f = bpe::load_tokenizer_json(j, file, std::numeric_limits<size_t>::max());
  m.vocab = std::move(f.vocab);
  m.merges = bpe::MergeTable::build(m.vocab, f.merges, f.merges_name);
  auto flag = [&](const io::Json& o, const char* key, bool def) {
    if (!o.contains(key) || o[key].is_null()) return def;
    if (!o[key].is_boolean()) throw Error(file, std::string(key) + " must be true or false");
    return o[key].get<bool>();
  };
  m.byte_fallback = flag(model, "byte_fallback", false);
  m.fuse_unk = flag(model, "fuse_unk", false);
  m.ignore_merges = flag(model, "ignore_merges", false);
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    const std::string u = spelling(model["unk_token"], "model.unk_token", file);
    auto it = m.vocab.find(u);
    if (it == m.vocab.end()) throw Error(file, "model.unk_token \"" + u + "\" is not in the vocabulary");
    m.unk = it->second;
  }
  // Byte fallback needs all 256 <0xXX> tokens for a character (else the unk); checked per byte: all or none present.
  m.have_bytes = true;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = m.vocab.find(name);
    if (it == m.vocab.end()) {
      m.have_bytes = false;
      break;
    }
    m.byte_ids[static_cast<size_t>(b)] = it->second;
  }
  if (m.byte_fallback && !m.have_bytes)
    throw Error(file, "byte_fallback without all 256 <0xXX> byte tokens in the vocabulary is not supported");

  if (j.contains("normalizer")) parse_normalizer(j["normalizer"], file, m.normalizer);
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null())
    throw Error(file, "pre_tokenizer " + type_of(j["pre_tokenizer"]) +
                          " is not supported (only tokenizer.json files without one, as Gemma's)");

  int32_t max_id = -1;
  for (const auto& [tok, id] : m.vocab) max_id = std::max(max_id, id);
  auto add = [&](const std::string& content, int32_t id, bool normalized, bool lstrip, bool rstrip, bool single_word) {
    m.added_ids.emplace(content, id);
    max_id = std::max(max_id, id);
    Added a{decode_utf8_lossy(content), id, lstrip, rstrip, single_word};
    if (normalized) {
      a.pattern = normalize(m.normalizer, a.pattern);
      m.normalized_added.add(std::move(a));
    } else {
      m.raw_added.add(std::move(a));
    }
  };
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) throw Error(file, "added_tokens must be a list");
    for (const io::Json& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || !t.contains("id") ||
          !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
          t["id"].get<int64_t>() > std::numeric_limits<int32_t>::max())
        throw Error(file, "added_tokens: expected objects with \"content\" and a non-negative \"id\"");
      const bool special = flag(t, "special", false);
      // AddedToken's default: normalized unless special.
      add(t["content"].get<std::string>(), t["id"].get<int32_t>(), flag(t, "normalized", !special),
          flag(t, "lstrip", false), flag(t, "rstrip", false), flag(t, "single_word", false));
    }
  }

  // tokenizer_config.json: which class transformers builds, and its settings.
  io::Json cfg = io::Json::object();
  const fs::path cfg_path = fs::path(dir) / "tokenizer_config.json";
  const std::string cfg_file = cfg_path.string();
  if (fs::exists(cfg_path)) {
    cfg = io::load_json(cfg_file);
    if (!cfg.is_object()) throw Error(cfg_file, "not a JSON object");
  }
  const std::string cls = cfg.contains("tokenizer_class") && cfg["tokenizer_class"].is_string()
                              ? cfg["tokenizer_class"].get<std::string>()
                              : "";
  const bool gemma = cls == "GemmaTokenizer" || cls == "GemmaTokenizerFast";
  auto cfg_flag = [&](const char* key, bool def) {
    if (!cfg.contains(key) || cfg[key].is_null()) return def;
    if (!cfg[key].is_boolean()) throw Error(cfg_file, std::string(key) + " must be true or false");
    return cfg[key].get<bool>();
  };
  // The special tokens: GemmaTokenizerFast's defaults, overridden by the config; transformers adds each to the added
  // vocabulary (split out of the text) when the file's added_tokens do not hold it already.
  auto special = [&](const char* key, const char* gemma_default) -> std::string {
    if (cfg.contains(key)) return cfg[key].is_null() ? "" : spelling(cfg[key], key, cfg_file);
    return gemma ? gemma_default : "";
  };
  auto special_id = [&](const std::string& s, const char* key) {
    if (s.empty()) return int32_t(-1);
    const int32_t id = m.token_id(s);
    if (id < 0) throw Error(cfg_file, std::string(key) + " \"" + s + "\" is not in " + file);
    if (!m.added_ids.count(s)) add(s, id, false, false, false, false);
    return id;
  };
  const int32_t bos = special_id(special("bos_token", "<bos>"), "bos_token");
  const int32_t eos = special_id(special("eos_token", "<eos>"), "eos_token");
  special_id(special("unk_token", "<unk>"), "unk_token");
  special_id(special("mask_token", ""), "mask_token");
  const std::string pad = special("pad_token", "<pad>");
  if (pad.empty()) throw Error(cfg_file, "no pad_token (the zero-shot pipeline pads SigLIP texts to max_length)");
  m.pad = special_id(pad, "pad_token");

  if (gemma) {  // GemmaTokenizerFast.update_post_processor
    if (cfg_flag("add_bos_token", true)) {
      if (bos < 0) throw Error(cfg_file, "add_bos_token without a bos_token");
      m.prefix.push_back(bos);
    }
    if (cfg_flag("add_eos_token", false)) {
      if (eos < 0) throw Error(cfg_file, "add_eos_token without an eos_token");
      m.suffix.push_back(eos);
    }
  } else if (!cls.empty() && cls != "PreTrainedTokenizerFast") {
    throw Error(cfg_file, "tokenizer_class \"" + cls +
                              "\" over tokenizer.json is not supported (GemmaTokenizer, PreTrainedTokenizerFast are)");
  } else if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    const io::Json& pp = j["post_processor"];
    if (type_of(pp) != "TemplateProcessing" || !pp.contains("single") || !pp["single"].is_array())
      throw Error(file, "post_processor " + type_of(pp) + " is not supported (TemplateProcessing is)");
    bool seen_a = false;
    for (const io::Json& piece : pp["single"]) {
      if (piece.contains("Sequence")) {
        seen_a = true;
        continue;
      }
      if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id") ||
          !piece["SpecialToken"]["id"].is_string())
        throw Error(file, "post_processor: unexpected entry " + piece.dump());
      const std::string name = piece["SpecialToken"]["id"].get<std::string>();
      const io::Json st = pp.contains("special_tokens") ? pp["special_tokens"] : io::Json::object();
      if (!st.is_object() || !st.contains(name) || !st[name].is_object() || !st[name].contains("ids") ||
          !st[name]["ids"].is_array())
        throw Error(file, "post_processor: special token \"" + name + "\" has no ids");
      for (const io::Json& id : st[name]["ids"]) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max())
          throw Error(file, "post_processor: special token \"" + name + "\" has a non-integer id");
        (seen_a ? m.suffix : m.prefix).push_back(id.get<int32_t>());
      }
    }
  }

  if (cfg.contains("padding_side") && !cfg["padding_side"].is_null()) {
    const io::Json& p = cfg["padding_side"];
    if (!p.is_string() || (p != "left" && p != "right"))
      throw Error(cfg_file, "padding_side must be \"left\" or \"right\"");
    m.left = p == "left";
  } else {
    m.left = gemma;  // GemmaTokenizerFast.padding_side
  }
  if (cfg.contains("model_input_names") && !cfg["model_input_names"].is_null()) {
    const io::Json& names = cfg["model_input_names"];
    if (!names.is_array()) throw Error(cfg_file, "model_input_names must be a list of strings");
    m.mask = false;
    for (const io::Json& n : names) {
      if (!n.is_string()) throw Error(cfg_file, "model_input_names must be a list of strings");
      m.mask |= n.get<std::string>() == "attention_mask";
    }
  }
  if (cfg.contains("model_max_length")) {
    const io::Json& ml = cfg["model_max_length"];
    // transformers writes a huge number (VERY_LARGE_INTEGER, or a float beyond int64) when the checkpoint sets none.
    if (ml.is_number_float() && ml.get<double>() > 1e18) {
    } else if (!ml.is_number_integer() || ml.get<int64_t>() < 1) {
      throw Error(cfg_file, "model_max_length must be a positive integer");
    } else if (ml.get<int64_t>() <= 1 << 16) {
      m.max_length = static_cast<size_t>(ml.get<int64_t>());
    }
  }
  if (m.max_length <= m.prefix.size() + m.suffix.size())
    throw Error(cfg_file, "model_max_length " + std::to_string(m.max_length) + " leaves no room for text");
  m.raw_added.finish();
  m.normalized_added.finish();
  m.n_ids = static_cast<size_t>(max_id) + 1;
  return BpeJsonTokenizer(std::move(impl));
}

std::vector<int32_t> BpeJsonTokenizer::encode(std::string_view utf8_text) const {
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  for (const auto& [raw, raw_id] : m.raw_added.split(decode_utf8_lossy(utf8_text))) {
    if (raw_id >= 0) {
      ids.push_back(raw_id);
      continue;
    }
    for (const auto& [piece, id] : m.normalized_added.split(normalize(m.normalizer, raw))) {
      if (id >= 0) {
        ids.push_back(id);
      } else if (!piece.empty()) {
        m.cache.encode(encode_utf8(piece), ids,
                       [&](const std::string& w, std::vector<int32_t>& out) { m.word_ids(w, out); });
      }
    }
  }
  const size_t room = m.max_length - m.prefix.size() - m.suffix.size();
  if (ids.size() > room) ids.resize(room);
  ids.insert(ids.begin(), m.prefix.begin(), m.prefix.end());
  ids.insert(ids.end(), m.suffix.begin(), m.suffix.end());
  return ids;
}

std::vector<int32_t> BpeJsonTokenizer::pad(std::vector<int32_t> ids) const {
  if (ids.size() >= impl_->max_length) return ids;
  if (impl_->left) ids.insert(ids.begin(), impl_->max_length - ids.size(), impl_->pad);
  else ids.resize(impl_->max_length, impl_->pad);
  return ids;
}

bool BpeJsonTokenizer::attention_mask() const { return impl_->mask; }
bool BpeJsonTokenizer::pad_left() const { return impl_->left; }
int32_t BpeJsonTokenizer::pad_id() const { return impl_->pad; }
size_t BpeJsonTokenizer::max_length() const { return impl_->max_length; }
size_t BpeJsonTokenizer::vocab_size() const { return impl_->n_ids; }

}  // namespace zeroshot::text
