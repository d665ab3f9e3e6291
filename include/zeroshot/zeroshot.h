// zeroshot: exact zero-shot classification with contrastive models (CLIP and SigLIP for images, CLAP for audio),
// in C++.
//
//   auto model = zeroshot::Model::load("openai/clip-vit-base-patch32");   // or a Hugging Face model folder
//   zeroshot::ZeroShotClassifier clf(*model, {"cat", "dog", "a red car"});  // default template
//   for (const auto& s : clf.classify_image("photo.jpg")) printf("%s %.3f\n", s.label.c_str(), s.score);
//
// Every function throws zeroshot::Error (zeroshot/error.h) with a one-line message naming the input at fault.
// Model and ZeroShotClassifier are safe to use from several threads at once (all methods are const).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zeroshot/error.h"

namespace zeroshot {

// The default model when none is named (a Hugging Face hub id).
inline constexpr const char* kDefaultModel = "openai/clip-vit-base-patch32";
// The Hugging Face zero-shot-image-classification pipeline's default template.
inline constexpr const char* kDefaultImageTemplate = "This is a photo of {}.";
// The Hugging Face zero-shot-audio-classification pipeline's default template.
inline constexpr const char* kDefaultAudioTemplate = "This is a sound of {}.";

// What a model's non-text tower reads: its family decides (CLIP, SigLIP: images; CLAP: audio).
enum class Modality { Image, Audio };

// Where clips longer than the model's 10 s window are cut (CLAP): Middle: the middle window (rand_trunc) or the
// middle start of each third (fusion), deterministic, the fixtures' rule; Random: Hugging Face's draws after
// np.random.seed(audio_seed), reseeded for every clip.
enum class AudioCrop { Middle, Random };

// Arithmetic of the encoders' linear layers (and, at Int8, attention's two products; everything else is f32):
//   F32   exact (the default; matches the reference implementation within float rounding)
//   BF16  bfloat16 weights and activations, f32 accumulation (AVX512-BF16)
//   Int8  int8 weights per output channel, int8 activations per row, exact int32 dot products (AVX512-VNNI;
//         faster still); uses zeroshot-int8.safetensors next to the model when it matches the weights.
//         Attention's q k^T and weights x v run in int8 too (softmax in f32; docs/quantized-format.md)
//   Int4  weight-only: 4-bit weights in groups of 32 inputs (scale and minimum per group), dequantized to f32
//         inside the products; for big models in little memory (ViT-H/14 < 2 GB); uses
//         zeroshot-int4.safetensors next to the model when it matches the weights
// Measured agreement with F32 (min cosine of the embeddings): docs/quantized-format.md. CPUs without those
// instructions run the same arithmetic on a slower portable path.
enum class Precision { F32, BF16, Int8, Int4 };

struct ModelOptions {
  int threads = 0;  // <= 0: all cores
  Precision precision = Precision::F32;
  uint64_t max_image_pixels = 100'000'000;  // images larger than this are refused before decoding
  // Opt-in approximation for large JPEGs: decode at 1/2, 1/4 or 1/8 scale in the IDCT (Pillow's Image.draft) when
  // the photo is at least twice the resize target, instead of decoding every pixel and resizing the full image.
  // Several times faster on phone photos; the embeddings are close to the exact ones but no longer match the
  // reference implementation's (docs/benchmarks.md, "Photo libraries", has the measured cosine and recall). Part
  // of fingerprint(), so caches of embeddings never mix the two.
  bool fast_decode = false;
  // F32 / BF16 / Int8 on the AVX-512 kernels: keep the weights in the layout the kernels read in the user cache
  // ($XDG_CACHE_HOME/zeroshot/packed-weights, written by the first load) and map it on later loads, which makes
  // them several times faster to start (docs/quantized-format.md). false: neither read nor write that file
  // (ZEROSHOT_PACKED_WEIGHTS=0 in the environment does the same for every load).
  bool weights_cache = true;
  double max_audio_seconds = 600;  // longer audio is refused (header first, then while decoding)
  AudioCrop audio_crop = AudioCrop::Middle;
  uint32_t audio_seed = 0;  // AudioCrop::Random only
  // Hub ids only:
  std::string revision = "main";
  bool offline = false;  // also HF_HUB_OFFLINE=1
  bool progress = true;  // download progress bar on stderr when it is a terminal
};

// How a model turns cosines into scores: logits = scale * cos + bias, then a softmax over the labels (CLIP, CLAP:
// bias 0) or a sigmoid per label (SigLIP: its own logit_bias; scores independent, not renormalized).
struct ScoreHead {
  float scale = 1.0f;  // exp(logit_scale)
  float bias = 0.0f;   // logit_bias
  bool sigmoid = false;
};

// Row-major embeddings: rows x dim floats.
struct Embeddings {
  size_t rows = 0;
  size_t dim = 0;
  std::vector<float> data;
  const float* row(size_t i) const { return data.data() + i * dim; }
};

class Model {
 public:
  // `name_or_path`: a Hugging Face model folder, or a hub id (resolved through the HF cache, downloaded if needed).
  // Weights are memory-mapped and used in place. The tokenizer files must exist but are parsed on the first text
  // call (tokenize, embed_texts), so a process that only embeds images (or finds its labels cached) skips them;
  // a malformed tokenizer file is reported by that call.
  static std::unique_ptr<Model> load(const std::string& name_or_path, const ModelOptions& opt = {});
  ~Model();

  const std::string& name() const;       // as given to load()
  const std::string& directory() const;  // the local folder the files were read from
  const char* model_type() const;        // the family: "clip", "clap", "open_clip", "siglip", "open_clip_siglip"
  // A stable id of what this model computes: 32 hex digits of a SHA-256 over config.json,
  // preprocessor_config.json, the tokenizer files (vocab.json + merges.txt, or tokenizer.json), each weight file's
  // name, size, safetensors header and 64 evenly spaced 4 KiB samples of its bytes, and the compute precision.
  // The same files in another folder (or a hub snapshot) give the same id; re-saved or re-trained weights give
  // another. Cheap (reads well under 1 MB, not the weights), computed on first call; for keying caches of
  // embeddings (label embeddings, image indexes).
  std::string fingerprint() const;
  size_t embedding_dim() const;          // projection dim
  int image_size() const;                // the square input side of the vision tower (0 for audio models)
  float logit_scale() const;             // exp(logit_scale): multiplies cosines before the softmax
                                         // (CLAP: exp(logit_scale_a), the audio-vs-text scale)
  ScoreHead score_head() const;          // scale (= logit_scale()), bias and softmax / sigmoid of the family
  Modality modality() const;             // Image (clip, siglip) or Audio (clap)
  const char* default_template() const;  // kDefaultImageTemplate or kDefaultAudioTemplate

  // Projected, un-normalized embeddings (HF get_text_features / get_image_features).
  Embeddings embed_texts(const std::vector<std::string>& texts) const;
  Embeddings embed_image_files(const std::vector<std::string>& paths) const;

  // Embeds many image files in batches of `batch_size`, decoding the next batch on worker threads while the
  // current one is encoded. `on_result(i, embedding, error)` is called once per path, in input order, on the
  // calling thread: `embedding` is nullptr and `error` says why when that file could not be read or decoded (the
  // other files go on). Returning false from on_result stops early.
  using ImageResultFn = std::function<bool(size_t index, const float* embedding, const std::string& error)>;
  void embed_image_files(const std::vector<std::string>& paths, size_t batch_size,
                         const ImageResultFn& on_result) const;

  // Audio models (CLAP): files decoded like ffmpeg (mono, 48 kHz), the pipeline's features for one clip, projected
  // un-normalized audio_embeds. The streaming form works like embed_image_files (decoding + features of the next
  // batch on worker threads while one is encoded). An image model throws zeroshot::Error.
  Embeddings embed_audio_files(const std::vector<std::string>& paths) const;
  void embed_audio_files(const std::vector<std::string>& paths, size_t batch_size,
                         const ImageResultFn& on_result) const;
  // embed_image_files or embed_audio_files, by modality().
  void embed_files(const std::vector<std::string>& paths, size_t batch_size, const ImageResultFn& on_result) const;

  // The steps, for callers that pipeline them (decode on some threads, encode batches on others):
  std::vector<int32_t> tokenize(const std::string& text) const;             // bos ... eos, <= 77 ids
                                                                            // (SigLIP: ... </s>, <= 64, unpadded;
                                                                            // SigLIP 2: ... <eos>, <= 64, unpadded)
  std::vector<float> preprocess_image_file(const std::string& path) const;  // [3, S, S] pixel_values
  std::vector<float> preprocess_image_memory(const uint8_t* data, size_t size, const std::string& name) const;
  // Already decoded pixels: interleaved 8-bit RGB, row-major, width * height * 3 bytes (a caller's own decoder, a
  // PIL image converted to RGB). `name` is used in error messages.
  std::vector<float> preprocess_rgb(const uint8_t* rgb, int width, int height, const std::string& name) const;
  Embeddings embed_pixel_values(const float* pixel_values, size_t n) const;  // n x [3, S, S]
  Embeddings embed_token_ids(const std::vector<std::vector<int32_t>>& ids) const;

  // Explanation maps (zeroshot/explain.h builds them): the side of the vision tower's square patch grid, 0 when the
  // model has no patch tokens (audio models, SigLIP for now). embed_patch_tokens: one image [3, S, S] ->
  // (1 + grid * grid) x embedding_dim projected, un-normalized rows: row 0 the image embedding (as
  // embed_pixel_values), then the patch tokens of CLIP Surgery's value-value path over the last `vv_blocks`
  // encoder layers (src/models/clip.h says exactly what that computes), row-major. Throws zeroshot::Error for a
  // model without patch tokens or vv_blocks outside 1..layers.
  int patch_grid() const;
  Embeddings embed_patch_tokens(const float* pixel_values, int vv_blocks = 1) const;

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct LabelScore {
  std::string label;
  float score = 0.f;
};

struct ClassifierOptions {
  // Label embeddings are cached on disk, one file per (Model::fingerprint(), templates, labels), so that the next
  // process with the same labels skips the text encoder (src/classify/label_cache.h has the format). "": the
  // default folder, $XDG_CACHE_HOME/zeroshot or ~/.cache/zeroshot; "none": no cache; else that folder.
  // A missing, corrupt or mismatched file is ignored and rewritten; cache I/O failures are never errors.
  std::string cache_dir;
  // Called while the label embeddings are computed (never when they are read from the cache), on the constructing
  // thread: (0, total) before the first prompt, then (prompts encoded so far, total) after each group of about
  // 1,000 prompts; total = labels (and synonyms) x templates. For a progress bar: ImageNet's 1,000 classes x 7
  // templates take ~30 s on a CPU with ViT-B/32. An exception it throws propagates out of the constructor.
  std::function<void(size_t done, size_t total)> progress = nullptr;
};

// Labels + templates -> label embeddings computed once (K x T prompts), then any number of inputs scored against
// them: softmax over labels of exp(logit_scale) * cosine, or for a sigmoid head (SigLIP) sigmoid(exp(logit_scale) *
// cosine + logit_bias) per label, not renormalized; sorted by score (the Hugging Face pipeline's output).
class ZeroShotClassifier {
 public:
  // `templates` empty: the default template. Each template must contain "{}".
  ZeroShotClassifier(const Model& model, std::vector<std::string> labels, std::vector<std::string> templates = {},
                     const ClassifierOptions& options = {});
  // Classes with synonyms: classes[k][0] is the label shown; every name of a class is put through every template
  // and all of them are ensembled into the class's embedding.
  ZeroShotClassifier(const Model& model, std::vector<std::vector<std::string>> classes,
                     std::vector<std::string> templates, const ClassifierOptions& options = {});

  const std::vector<std::string>& labels() const { return labels_; }
  const std::vector<std::string>& templates() const { return templates_; }
  // K x dim, L2-normalized.
  const Embeddings& label_embeddings() const { return label_embeds_; }
  // Whether label_embeddings() were read from the disk cache (false: computed, and then stored when enabled).
  bool label_embeddings_cached() const { return from_cache_; }

  // `embedding`: one projected embedding (normalized or not). top_k == 0: all labels.
  std::vector<LabelScore> classify(const float* embedding, size_t top_k = 0) const;
  std::vector<LabelScore> classify_image(const std::string& path, size_t top_k = 0) const;
  std::vector<LabelScore> classify_audio(const std::string& path, size_t top_k = 0) const;
  // Cosine similarity to each label, in label order (for thresholds).
  std::vector<float> cosines(const float* embedding) const;

 private:
  void build(std::vector<std::vector<std::string>> classes, const ClassifierOptions& options);
  const Model& model_;
  std::vector<std::string> labels_;
  std::vector<std::string> templates_;
  Embeddings label_embeds_;
  bool from_cache_ = false;
};

}  // namespace zeroshot
