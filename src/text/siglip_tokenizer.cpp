#include "text/siglip_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/json.h"
#include "text/text_normalize.h"
#include "zeroshot/error.h"

namespace zeroshot::text {

namespace fs = std::filesystem;

namespace {

constexpr char32_t kUnderline = U'\u2581';  // SentencePiece's word boundary, "▁"

// Python's string.punctuation.
bool ascii_punct(char32_t c) {
  return c < 128 &&
         std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").find(static_cast<char>(c)) != std::string_view::npos;
}

// big_vision's canonicalize_text as SiglipTokenizer has it: punctuation
// removed, re.sub(r"\s+", " "), strip().
std::u32string canonicalize(std::u32string_view text) {
  std::u32string out;
  bool space = false;
  for (char32_t c : text) {
    if (ascii_punct(c)) continue;
    if (py_isspace(c)) {
      space = true;
      continue;
    }
    if (space) out += U' ';
    space = false;
    out += c;
  }
  if (space) out += U' ';
  return std::u32string(py_strip(out));
}

// The spelling of a special token in tokenizer_config.json: a string or an
// AddedToken dict ({"content": ...}).
std::string token_spelling(const io::Json& cfg, const char* key, const std::string& def, const std::string& file) {
  if (!cfg.contains(key) || cfg[key].is_null()) return def;
  const io::Json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw Error(file, std::string(key) + " must be a string or {\"content\": string}");
}

}  // namespace

struct SiglipTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::string file;
  bool lower = true;
  bool mask = true;  // model_input_names holds "attention_mask" (SiglipTokenizer's default)
  size_t max_length = 64;
  size_t unk_length = 0;  // pieces of the unk token's spelling (encoded without a dummy prefix)
  std::string unk;
  // The special tokens as the text may spell them, with their ids (split out
  // before SentencePiece runs).
  std::vector<std::pair<std::u32string, int32_t>> specials;
  int32_t eos = 1, pad = 1;

  std::vector<std::string> pieces(const std::string& utf8) const {
    std::vector<std::string> out;
    const auto status = sp.Encode(utf8, &out);
    if (!status.ok()) throw Error(file, "SentencePiece: " + status.ToString());
    return out;
  }

  // SiglipTokenizer._tokenize: canonicalize, encode behind the unk spelling,
  // drop its pieces.
  void tokenize_chunk(std::u32string_view chunk, std::vector<std::string>& out) const {
    std::vector<std::string> p = pieces(unk + encode_utf8(canonicalize(chunk)));
    const size_t skip = p.size() >= unk_length ? unk_length : 0;
    out.insert(out.end(), p.begin() + static_cast<long>(skip), p.end());
  }
};

SiglipTokenizer::SiglipTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SiglipTokenizer::SiglipTokenizer(SiglipTokenizer&&) noexcept = default;
SiglipTokenizer& SiglipTokenizer::operator=(SiglipTokenizer&&) noexcept = default;
SiglipTokenizer::~SiglipTokenizer() = default;

SiglipTokenizer SiglipTokenizer::from_dir(const std::string& dir) {
  auto impl = std::make_unique<Impl>();
  const fs::path model = fs::path(dir) / "spiece.model";
  impl->file = model.string();
  std::error_code ec;
  if (!fs::is_regular_file(model, ec))
    throw Error(impl->file,
                "not found (a SigLIP model folder needs its "
                "SentencePiece model spiece.model)");
  std::ifstream in(model, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) throw Error(impl->file, "cannot read");
  // SiglipTokenizer loads the model with normalizer_spec.add_dummy_prefix =
  // false (MergeFrom of a NormalizerSpec). Protobuf merges a repeated
  // occurrence of a message field into the first, so the same override is these
  // bytes appended to the serialized ModelProto: field 3 (normalizer_spec),
  // length 2, holding field 3 (add_dummy_prefix) varint 0. Debian's
  // libsentencepiece-dev ships no protobuf headers to do it through the message
  // classes.
  std::string proto = ss.str();
  if (proto.empty()) throw Error(impl->file, "empty file (not a SentencePiece model)");
  proto.append("\x1a\x02\x18\x00", 4);
  const auto status = impl->sp.LoadFromSerializedProto(proto);
  if (!status.ok() || impl->sp.GetPieceSize() <= 0)
    throw Error(impl->file, "not a SentencePiece model (" + status.ToString() + ")");

  std::string eos = "</s>", unk = "<unk>",
              pad = "</s>";  // SiglipTokenizer's defaults
  const fs::path cfg_file = fs::path(dir) / "tokenizer_config.json";
  if (fs::exists(cfg_file)) {
    const io::Json cfg = io::load_json(cfg_file.string());
    if (!cfg.is_object()) throw Error(cfg_file.string(), "not a JSON object");
    eos = token_spelling(cfg, "eos_token", eos, cfg_file.string());
    unk = token_spelling(cfg, "unk_token", unk, cfg_file.string());
    pad = token_spelling(cfg, "pad_token", pad, cfg_file.string());
    if (cfg.contains("do_lower_case")) {
      if (!cfg["do_lower_case"].is_boolean()) throw Error(cfg_file.string(), "do_lower_case must be true or false");
      impl->lower = cfg["do_lower_case"].get<bool>();
    }
    if (cfg.contains("model_input_names") && !cfg["model_input_names"].is_null()) {
      const io::Json& names = cfg["model_input_names"];
      if (!names.is_array()) throw Error(cfg_file.string(), "model_input_names must be a list of strings");
      impl->mask = false;
      for (const io::Json& n : names) {
        if (!n.is_string()) throw Error(cfg_file.string(), "model_input_names must be a list of strings");
        impl->mask |= n.get<std::string>() == "attention_mask";
      }
    }
    if (cfg.contains("model_max_length")) {
      const io::Json& m = cfg["model_max_length"];
      // transformers writes a huge number (VERY_LARGE_INTEGER, int(1e30): past 64 bits, so a JSON reader holds it as
      // a float) when the checkpoint sets none, as the T5Tokenizer folders of OpenCLIP SigLIP do; SigLIP's is 64.
      // Above 65536 is no limit of the tokenizer's own.
      const bool unlimited =
          (m.is_number_float() && m.get<double>() > 65536.0) || (m.is_number_unsigned() && m.get<uint64_t>() > 65536);
      if (!unlimited) {
        if (!m.is_number_integer() || m.get<int64_t>() < 2)
          throw Error(cfg_file.string(), "model_max_length must be an integer >= 2");
        impl->max_length = static_cast<size_t>(m.get<int64_t>());
      }
    }
  }
  auto id_of = [&](const std::string& piece, const char* what) {
    const int id = impl->sp.PieceToId(piece);
    if (piece.empty() || (id == impl->sp.unk_id() && piece != impl->sp.IdToPiece(id)))
      throw Error(impl->file,
                  std::string("the ") + what + " \"" + piece + "\" is not a piece of this SentencePiece model");
    return static_cast<int32_t>(id);
  };
  impl->eos = id_of(eos, "eos token");
  impl->pad = id_of(pad, "pad token");
  const int32_t unk_id = id_of(unk, "unk token");
  impl->unk = unk;
  impl->unk_length = impl->pieces(unk).size();
  for (const auto& [s, id] : {std::pair{eos, impl->eos}, std::pair{unk, unk_id}, std::pair{pad, impl->pad}}) {
    std::u32string u = decode_utf8_lossy(s);
    bool seen = false;
    for (const auto& e : impl->specials) seen |= e.first == u;
    if (!seen) impl->specials.emplace_back(std::move(u), id);
  }
  // Longest spelling first: the tokens trie prefers the longest match at a
  // position.
  std::sort(impl->specials.begin(), impl->specials.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return SiglipTokenizer(std::move(impl));
}

std::vector<int32_t> SiglipTokenizer::encode(std::string_view utf8_text) const {
  const Impl& m = *impl_;
  // 1-2: the leading "▁", U+2581 in the text as spaces, lower-cased one code
  // point at a time.
  std::u32string text(1, kUnderline);
  for (char32_t c : decode_utf8_lossy(utf8_text)) {
    const char32_t ch = c == kUnderline ? U' ' : c;
    if (m.lower) {
      const char32_t one[1] = {ch};
      text += python_lower(std::u32string_view(one, 1));
    } else {
      text += ch;
    }
  }
  // 3: split at the special tokens (leftmost, longest), each eating the
  // whitespace around it.
  struct Chunk {
    std::u32string text;
    int32_t special = -1;
  };
  std::vector<Chunk> chunks;
  std::u32string cur;
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::u32string, int32_t>* hit = nullptr;
    for (const auto& s : m.specials)
      if (text.compare(i, s.first.size(), s.first) == 0) {
        hit = &s;
        break;
      }
    if (!hit) {
      cur += text[i++];
      continue;
    }
    while (!cur.empty() && py_isspace(cur.back())) cur.pop_back();  // lstrip of the special token
    chunks.push_back({std::move(cur), -1});
    cur.clear();
    chunks.push_back({{}, hit->second});
    i += hit->first.size();
    while (i < text.size() && py_isspace(text[i])) ++i;  // rstrip
  }
  chunks.push_back({std::move(cur), -1});

  // 4-5: pieces, the lone leading "▁" before a special token dropped, then ids.
  std::vector<std::string> pieces;
  std::vector<int32_t> special_at;  // per piece: the special id, or -1
  for (const Chunk& c : chunks) {
    if (c.special >= 0) {
      pieces.emplace_back();
      special_at.push_back(c.special);
    } else if (!c.text.empty()) {
      const size_t before = pieces.size();
      m.tokenize_chunk(c.text, pieces);
      special_at.resize(special_at.size() + pieces.size() - before, -1);
    }
  }
  size_t first = 0;
  if (pieces.size() > 1 && special_at[0] < 0 && pieces[0] == "\xe2\x96\x81" && special_at[1] >= 0) first = 1;
  std::vector<int32_t> ids;
  for (size_t i = first; i < pieces.size(); ++i)
    ids.push_back(special_at[i] >= 0 ? special_at[i] : static_cast<int32_t>(m.sp.PieceToId(pieces[i])));
  // 6: truncation=True keeps room for the eos, then eos unless already last.
  if (ids.size() > m.max_length - 1) ids.resize(m.max_length - 1);
  if (ids.empty() || ids.back() != m.eos) ids.push_back(m.eos);
  return ids;
}

std::vector<int32_t> SiglipTokenizer::pad(std::vector<int32_t> ids) const {
  if (ids.size() < impl_->max_length) ids.resize(impl_->max_length, impl_->pad);
  return ids;
}

bool SiglipTokenizer::attention_mask() const { return impl_->mask; }
int32_t SiglipTokenizer::eos_id() const { return impl_->eos; }
int32_t SiglipTokenizer::pad_id() const { return impl_->pad; }
size_t SiglipTokenizer::max_length() const { return impl_->max_length; }
size_t SiglipTokenizer::vocab_size() const { return static_cast<size_t>(impl_->sp.GetPieceSize()); }

}  // namespace zeroshot::text
