#include "api/clap_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <future>
#include <thread>

#include "api/trace.h"
#include "io/safetensors.h"
#include "zeroshot/error.h"

namespace zeroshot::api {

namespace fs = std::filesystem;

ClapBackend::ClapBackend(const std::string& dir, const ClapBackendOptions& opt) : dir_(dir), opt_(opt) {
  const fs::path d(dir);
  const std::string config = (d / "config.json").string();
  cfg_ = models::ClapConfig::load(config);
  const fs::path pre = d / "preprocessor_config.json";
  audio::ClapFeatureConfig fcfg;  // HF's ClapFeatureExtractor defaults when the file is absent
  if (fs::exists(pre)) fcfg = audio::ClapFeatureConfig::load(pre.string());
  if (fcfg.feature_size != cfg_.audio.num_mel_bins)
    throw Error(pre.string(), "feature_size " + std::to_string(fcfg.feature_size) + " does not match audio_config.num_mel_bins " +
                                  std::to_string(cfg_.audio.num_mel_bins));
  if (fcfg.fusion() != cfg_.audio.enable_fusion)
    throw Error(pre.string(), std::string("truncation \"") + fcfg.truncation + "\" does not match audio_config.enable_fusion " +
                                  (cfg_.audio.enable_fusion ? "true" : "false"));
  const int frames = fcfg.chunk_frames();
  if (frames < 1 || frames > cfg_.audio.spec_size * cfg_.audio.freq_ratio())
    throw Error(pre.string(), std::to_string(frames) + " frames per clip do not fit audio_config.spec_size " +
                                  std::to_string(cfg_.audio.spec_size));
  cfg_.audio.input_frames = frames;
  {
    std::error_code ec;
    if (fs::is_regular_file(d / "vocab.json", ec) && fs::is_regular_file(d / "merges.txt", ec))
      tokenizer_files_ = {(d / "vocab.json").string(), (d / "merges.txt").string()};
    else if (fs::is_regular_file(d / "tokenizer.json", ec))
      tokenizer_files_ = {(d / "tokenizer.json").string()};
    else
      (void)text::RobertaTokenizer::from_dir(dir);  // for its error message
  }
  {
    trace::Phase p("open weights");
    weights_ = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir));
  }
  trace::Phase p("build model");
  model_ = std::make_unique<models::ClapModel>(cfg_, weights_, opt.threads, opt.precision);
  extractor_ = std::make_unique<audio::ClapFeatureExtractor>(fcfg);
}

ClapBackend::~ClapBackend() = default;

size_t ClapBackend::embedding_dim() const { return static_cast<size_t>(cfg_.projection_dim); }
float ClapBackend::logit_scale() const { return std::exp(model_->logit_scale_a()); }

const text::RobertaTokenizer& ClapBackend::tokenizer() const {
  // (A mutex, not call_once: a failed load throws and the next call tries again.)
  std::lock_guard lock(tok_mutex_);
  if (!tokenizer_) {
    trace::Phase p("load tokenizer");
    tokenizer_ = std::make_unique<text::RobertaTokenizer>(text::RobertaTokenizer::from_dir(dir_));
  }
  return *tokenizer_;
}

std::vector<int32_t> ClapBackend::tokenize(const std::string& text) const {
  std::vector<int32_t> ids = tokenizer().encode(text);
  // RoBERTa positions start after the pad id: the table holds max_positions - pad - 1 tokens (512 for 514).
  const size_t limit = static_cast<size_t>(std::max(0, cfg_.text.max_positions - cfg_.text.pad_token_id - 1));
  if (ids.size() > limit)
    throw Error("text \"" + (text.size() > 40 ? text.substr(0, 40) + "..." : text) + "\"",
                std::to_string(ids.size()) + " tokens, more than the model's " + std::to_string(limit));
  return ids;
}

void ClapBackend::embed_token_ids(const std::vector<std::vector<int32_t>>& ids, float* out) const {
  if (!ids.empty()) model_->encode_texts(ids, out);
}

audio::ClapFeatures ClapBackend::features_of_file(const std::string& path) const {
  audio::DecodeOptions d;
  d.target_rate = extractor_->config().sampling_rate;
  d.max_seconds = opt_.max_seconds;
  const audio::Waveform w = audio::decode_file(path, d);
  return extractor_->extract(w.samples.data(), w.samples.size(), opt_.crop, opt_.seed);
}

void ClapBackend::encode(const std::vector<const audio::ClapFeatures*>& clips, float* out) const {
  if (clips.empty()) return;
  trace::Phase p("encode audio");
  const int channels = clips[0]->channels;
  const size_t per = clips[0]->data.size();
  std::vector<float> feats(clips.size() * per);
  std::unique_ptr<bool[]> longer(new bool[clips.size()]);
  for (size_t i = 0; i < clips.size(); ++i) {
    std::copy(clips[i]->data.begin(), clips[i]->data.end(), feats.begin() + static_cast<std::ptrdiff_t>(i * per));
    longer[i] = clips[i]->is_longer;
  }
  model_->encode_audio(feats.data(), static_cast<int>(clips.size()), channels, longer.get(), out);
}

void ClapBackend::embed_files(const std::vector<std::string>& paths, size_t batch_size, const ResultFn& on_result) const {
  if (paths.empty()) return;
  if (batch_size == 0) batch_size = 1;
  const unsigned workers = opt_.threads > 0 ? static_cast<unsigned>(opt_.threads) : std::max(1u, std::thread::hardware_concurrency());
  struct Batch {
    std::vector<audio::ClapFeatures> feats;
    std::vector<std::string> errors;  // empty when that file decoded
  };
  auto featurize = [&](size_t begin) {
    trace::Phase p("decode audio batch");
    const size_t n = std::min(batch_size, paths.size() - begin);
    Batch b;
    b.feats.resize(n);
    b.errors.resize(n);
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next++) < n;) {
        try {
          b.feats[i] = features_of_file(paths[begin + i]);
        } catch (const std::exception& e) {
          b.errors[i] = e.what();
        }
      }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < std::min<size_t>(workers, n); ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    return b;
  };
  std::future<Batch> pending = std::async(std::launch::async, featurize, 0);
  const size_t dim = embedding_dim();
  for (size_t begin = 0; begin < paths.size(); begin += batch_size) {
    Batch b = pending.get();
    if (begin + batch_size < paths.size()) pending = std::async(std::launch::async, featurize, begin + batch_size);
    std::vector<const audio::ClapFeatures*> ok;
    for (size_t i = 0; i < b.feats.size(); ++i)
      if (b.errors[i].empty()) ok.push_back(&b.feats[i]);
    std::vector<float> e(ok.size() * dim);
    encode(ok, e.data());
    size_t k = 0;
    for (size_t i = 0; i < b.errors.size(); ++i) {
      const bool good = b.errors[i].empty();
      if (!on_result(begin + i, good ? e.data() + k * dim : nullptr, b.errors[i])) {
        if (pending.valid()) pending.wait();
        return;
      }
      if (good) ++k;
    }
  }
}

}  // namespace zeroshot::api
