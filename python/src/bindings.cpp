// zeroshot._zeroshot: the extension module under the Python package (python/zeroshot/), over the public API only
// (include/zeroshot/). It is deliberately thin: inputs arrive already sorted into the few forms the C++ API takes
// (paths, encoded bytes, 8-bit RGB arrays, float32 embedding matrices); the Python layer turns PIL images, pathlib
// paths and numpy audio into those and owns every user-facing check and docstring.
//
// Contract:
// - Every computation runs with the GIL released, so Python threads embedding at once use the cores in parallel
//   (Model, ZeroShotClassifier, MultiLabelClassifier and Moderator are const and thread-safe in C++).
// - zeroshot::Error surfaces as zeroshot.Error (an Exception) with the same one-line message; bad shapes of the
//   arrays handed in are ValueError.
// - Embedding matrices come out as float32 numpy arrays that own the C++ buffer (no copy).
// - Objects that refer to a model (classifiers, moderators) keep the Python model object alive.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <future>
#include <thread>

#include "zeroshot/tagging.h"
#include "zeroshot/zeroshot.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace zeroshot {
void bind_index(nb::module_& m);  // index_bindings.cpp

namespace {

using FloatOut = nb::ndarray<nb::numpy, float, nb::ndim<2>>;
using FloatIn = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using RgbIn = nb::ndarray<const uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu>;
using PixelsIn = nb::ndarray<const float, nb::ndim<4>, nb::c_contig, nb::device::cpu>;

// Hands the vector to numpy: the capsule owns the Embeddings and frees it with the array.
FloatOut to_numpy(Embeddings&& e) {
  auto* owned = new Embeddings(std::move(e));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<Embeddings*>(p); });
  return FloatOut(owned->data.data(), {owned->rows, owned->dim}, owner);
}

Precision parse_precision(const std::string& s) {
  if (s == "f32") return Precision::F32;
  if (s == "bf16") return Precision::BF16;
  if (s == "int8") return Precision::Int8;
  if (s == "int4") return Precision::Int4;
  throw nb::value_error(("precision must be \"f32\", \"bf16\", \"int8\" or \"int4\", not \"" + s + "\"").c_str());
}

AudioCrop parse_crop(const std::string& s) {
  if (s == "middle") return AudioCrop::Middle;
  if (s == "random") return AudioCrop::Random;
  throw nb::value_error(("audio_crop must be \"middle\" or \"random\", not \"" + s + "\"").c_str());
}

ScoreOn parse_score_on(const std::string& s) {
  if (s == "probability") return ScoreOn::Probability;
  if (s == "cosine") return ScoreOn::Cosine;
  throw nb::value_error(("on must be \"probability\" or \"cosine\", not \"" + s + "\"").c_str());
}

void check_dim(const FloatIn& e, size_t dim) {
  if (e.shape(1) != dim)
    throw nb::value_error(("embeddings have " + std::to_string(e.shape(1)) + " columns; the model's embedding_dim is " +
                           std::to_string(dim))
                              .c_str());
}

// One image as the C++ API takes it. The Python objects that own `data` are kept alive by the caller's list.
struct ImageItem {
  enum Kind { Path, Encoded, Rgb } kind = Path;
  std::string name;  // the path, or the name used in error messages
  const uint8_t* data = nullptr;
  size_t size = 0;
  int width = 0, height = 0;
};

std::vector<float> preprocess(const Model& model, const ImageItem& it) {
  switch (it.kind) {
    case ImageItem::Path: return model.preprocess_image_file(it.name);
    case ImageItem::Encoded: return model.preprocess_image_memory(it.data, it.size, it.name);
    case ImageItem::Rgb: return model.preprocess_rgb(it.data, it.width, it.height, it.name);
  }
  return {};
}

// pixel_values of items [begin, end), decoded on up to hardware_concurrency threads; the error of the first failing
// item (in input order) is rethrown.
std::vector<float> preprocess_range(const Model& model, const std::vector<ImageItem>& items, size_t begin, size_t end) {
  const size_t side = static_cast<size_t>(model.image_size()), per = 3 * side * side, n = end - begin;
  std::vector<float> pixels(n * per);
  std::vector<std::exception_ptr> errors(n);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        const std::vector<float> p = preprocess(model, items[begin + i]);
        std::memcpy(pixels.data() + i * per, p.data(), per * sizeof(float));
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  const size_t workers = std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return pixels;
}

// Batches of `batch` images: the next batch is decoded while the current one is encoded (as the CLI does).
Embeddings embed_items(const Model& model, const std::vector<ImageItem>& items, size_t batch) {
  Embeddings out;
  out.dim = model.embedding_dim();
  out.rows = items.size();
  out.data.resize(out.rows * out.dim);
  if (items.empty()) return out;
  batch = std::max<size_t>(batch, 1);
  auto start = [&](size_t b) {
    return std::async(std::launch::async, preprocess_range, std::cref(model), std::cref(items), b,
                      std::min(items.size(), b + batch));
  };
  std::future<std::vector<float>> pending = start(0);
  for (size_t b = 0; b < items.size(); b += batch) {
    std::vector<float> pixels = pending.get();
    if (b + batch < items.size()) pending = start(b + batch);
    const size_t m = std::min(items.size(), b + batch) - b;
    Embeddings e;
    try {
      e = model.embed_pixel_values(pixels.data(), m);
    } catch (...) {
      if (pending.valid()) pending.wait();  // the worker reads `items`: let it finish before they go
      throw;
    }
    std::memcpy(out.data.data() + b * out.dim, e.data.data(), m * out.dim * sizeof(float));
  }
  return out;
}

FloatOut embed_images(const Model& model, nb::list inputs, const std::vector<std::string>& names, size_t batch) {
  if (names.size() != inputs.size()) throw nb::value_error("names must have one entry per input");
  if (model.modality() != Modality::Image)
    throw Error(model.name(), "is an audio model (" + std::string(model.model_type()) + "): it does not embed images");
  std::vector<ImageItem> items(inputs.size());
  std::vector<nb::object> keep;  // owners of the bytes and pixels while the GIL is released
  for (size_t i = 0; i < inputs.size(); ++i) {
    nb::handle h = inputs[i];
    ImageItem& it = items[i];
    it.name = names[i];
    if (nb::isinstance<nb::str>(h)) {
      it.kind = ImageItem::Path;
      it.name = nb::cast<std::string>(h);
    } else if (nb::isinstance<nb::bytes>(h)) {
      nb::bytes b = nb::borrow<nb::bytes>(h);
      it.kind = ImageItem::Encoded;
      it.data = reinterpret_cast<const uint8_t*>(b.c_str());
      it.size = b.size();
      keep.push_back(b);
    } else {
      RgbIn a;
      if (!nb::try_cast(h, a, false) || a.shape(2) != 3)
        throw nb::type_error("an image must be a path, bytes or a C-contiguous uint8 array of shape (H, W, 3)");
      if (a.shape(0) > 1u << 30 || a.shape(1) > 1u << 30) throw nb::value_error("image array too large");
      it.kind = ImageItem::Rgb;
      it.data = a.data();
      it.height = static_cast<int>(a.shape(0));
      it.width = static_cast<int>(a.shape(1));
      keep.push_back(nb::borrow(h));
    }
  }
  Embeddings e;
  {
    nb::gil_scoped_release unlocked;
    e = embed_items(model, items, batch);
  }
  return to_numpy(std::move(e));
}

FloatOut embed_audio_files(const Model& model, const std::vector<std::string>& paths, size_t batch) {
  Embeddings out;
  {
    nb::gil_scoped_release unlocked;
    if (model.modality() != Modality::Audio)
      throw Error(model.name(), "is an image model (" + std::string(model.model_type()) + "): it does not embed audio");
    out.dim = model.embedding_dim();
    out.rows = paths.size();
    out.data.resize(out.rows * out.dim);
    std::string error;
    model.embed_audio_files(paths, std::max<size_t>(batch, 1), [&](size_t i, const float* emb, const std::string& err) {
      if (!emb) {
        error = err;
        return false;
      }
      std::memcpy(out.data.data() + i * out.dim, emb, out.dim * sizeof(float));
      return true;
    });
    if (!error.empty()) throw Error(error);
  }
  return to_numpy(std::move(out));
}

std::vector<std::vector<std::pair<std::string, float>>> classify_rows(const ZeroShotClassifier& c, const FloatIn& e,
                                                                      size_t top_k) {
  check_dim(e, c.label_embeddings().dim);
  std::vector<std::vector<std::pair<std::string, float>>> out(e.shape(0));
  {
    nb::gil_scoped_release unlocked;
    for (size_t i = 0; i < out.size(); ++i)
      for (auto& s : c.classify(e.data() + i * e.shape(1), top_k)) out[i].emplace_back(std::move(s.label), s.score);
  }
  return out;
}

using TagTuple = std::tuple<std::string, float, float, bool>;

std::vector<TagTuple> tag_tuples(std::vector<TagScore>&& tags) {
  std::vector<TagTuple> out;
  for (auto& t : tags) out.emplace_back(std::move(t.label), t.score, t.threshold, t.flagged);
  return out;
}

}  // namespace
}  // namespace zeroshot

NB_MODULE(_zeroshot, m) {
  using namespace zeroshot;
  m.doc() = "zeroshot's extension module; use the zeroshot package, not this.";
  // Models held in module globals at interpreter exit are fine; nanobind would report them as leaks.
  nb::set_leak_warnings(false);
  nb::exception<Error>(m, "Error");

  m.attr("DEFAULT_MODEL") = kDefaultModel;
  m.attr("DEFAULT_IMAGE_TEMPLATE") = kDefaultImageTemplate;
  m.attr("DEFAULT_AUDIO_TEMPLATE") = kDefaultAudioTemplate;

  nb::class_<Model>(m, "Model")
      .def_prop_ro("name", &Model::name)
      .def_prop_ro("directory", &Model::directory)
      .def_prop_ro("model_type", [](const Model& x) { return std::string(x.model_type()); })
      .def_prop_ro("fingerprint", &Model::fingerprint, nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("embedding_dim", &Model::embedding_dim)
      .def_prop_ro("image_size", &Model::image_size)
      .def_prop_ro("logit_scale", &Model::logit_scale)
      .def_prop_ro("modality", [](const Model& x) { return x.modality() == Modality::Image ? "image" : "audio"; })
      .def_prop_ro("default_template", [](const Model& x) { return std::string(x.default_template()); })
      .def("tokenize", &Model::tokenize, "text"_a, nb::call_guard<nb::gil_scoped_release>())
      .def(
          "embed_texts",
          [](const Model& x, const std::vector<std::string>& texts) {
            Embeddings e;
            {
              nb::gil_scoped_release unlocked;
              e = x.embed_texts(texts);
            }
            return to_numpy(std::move(e));
          },
          "texts"_a)
      .def("embed_images", &embed_images, "inputs"_a, "names"_a, "batch_size"_a)
      .def(
          "embed_pixel_values",
          [](const Model& x, const PixelsIn& px) {
            const size_t side = static_cast<size_t>(x.image_size());
            if (x.modality() != Modality::Image)
              throw Error(x.name(),
                          "is an audio model (" + std::string(x.model_type()) + "): it does not embed images");
            if (px.shape(1) != 3 || px.shape(2) != side || px.shape(3) != side)
              throw nb::value_error(
                  ("pixel_values must have shape (n, 3, " + std::to_string(side) + ", " + std::to_string(side) + ")")
                      .c_str());
            Embeddings e;
            e.dim = x.embedding_dim();
            if (px.shape(0) > 0) {
              nb::gil_scoped_release unlocked;
              e = x.embed_pixel_values(px.data(), px.shape(0));
            }
            return to_numpy(std::move(e));
          },
          "pixel_values"_a)
      .def("embed_audio_files", &embed_audio_files, "paths"_a, "batch_size"_a);

  m.def(
      "load_model",
      [](const std::string& name, const std::string& precision, int threads, bool offline, const std::string& revision,
         bool progress, uint64_t max_image_pixels, double max_audio_seconds, const std::string& audio_crop,
         uint32_t audio_seed) {
        ModelOptions o;
        o.precision = parse_precision(precision);
        o.audio_crop = parse_crop(audio_crop);
        o.threads = threads;
        o.offline = offline;
        o.revision = revision;
        o.progress = progress;
        o.max_image_pixels = max_image_pixels;
        o.max_audio_seconds = max_audio_seconds;
        o.audio_seed = audio_seed;
        nb::gil_scoped_release unlocked;
        return Model::load(name, o);
      },
      "name_or_path"_a, "precision"_a, "threads"_a, "offline"_a, "revision"_a, "progress"_a, "max_image_pixels"_a,
      "max_audio_seconds"_a, "audio_crop"_a, "audio_seed"_a);

  nb::class_<ZeroShotClassifier>(m, "ZeroShotClassifier")
      .def(
          "__init__",
          [](ZeroShotClassifier* self, const Model& model, std::vector<std::vector<std::string>> classes,
             std::vector<std::string> templates, const std::string& cache_dir) {
            ClassifierOptions o;
            o.cache_dir = cache_dir;
            nb::gil_scoped_release unlocked;
            new (self) ZeroShotClassifier(model, std::move(classes), std::move(templates), o);
          },
          "model"_a, "classes"_a, "templates"_a, "cache_dir"_a, nb::keep_alive<1, 2>())
      .def_prop_ro("labels", &ZeroShotClassifier::labels)
      .def_prop_ro("templates", &ZeroShotClassifier::templates)
      .def_prop_ro("label_embeddings_cached", &ZeroShotClassifier::label_embeddings_cached)
      .def_prop_ro(
          "label_embeddings",
          [](const ZeroShotClassifier& c) {
            const Embeddings& e = c.label_embeddings();
            // A read-only view into the classifier, which the array keeps alive (reference_internal).
            return nb::ndarray<nb::numpy, const float, nb::ndim<2>>(e.data.data(), {e.rows, e.dim}, nb::handle());
          },
          nb::rv_policy::reference_internal)
      .def("classify", &classify_rows, "embeddings"_a, "top_k"_a)
      .def(
          "cosines",
          [](const ZeroShotClassifier& c, const FloatIn& e) {
            check_dim(e, c.label_embeddings().dim);
            Embeddings out;
            {
              nb::gil_scoped_release unlocked;
              out.rows = e.shape(0);
              out.dim = c.labels().size();
              out.data.resize(out.rows * out.dim);
              for (size_t i = 0; i < out.rows; ++i) {
                const std::vector<float> cs = c.cosines(e.data() + i * e.shape(1));
                std::copy(cs.begin(), cs.end(), out.data.begin() + i * out.dim);
              }
            }
            return to_numpy(std::move(out));
          },
          "embeddings"_a);

  nb::class_<MultiLabelClassifier>(m, "MultiLabelClassifier")
      .def(
          "__init__",
          [](MultiLabelClassifier* self, const Model& model, std::vector<std::vector<std::string>> classes,
             std::vector<std::string> templates, const std::string& on, std::optional<float> threshold,
             std::vector<std::optional<float>> thresholds, std::vector<std::string> negatives,
             std::vector<std::string> label_negatives, const std::string& cache_dir) {
            MultiLabelOptions o;
            o.on = parse_score_on(on);
            o.threshold = threshold;
            o.thresholds = std::move(thresholds);
            o.negatives = std::move(negatives);
            o.label_negatives = std::move(label_negatives);
            o.classifier.cache_dir = cache_dir;
            nb::gil_scoped_release unlocked;
            new (self) MultiLabelClassifier(model, std::move(classes), std::move(templates), std::move(o));
          },
          "model"_a, "classes"_a, "templates"_a, "on"_a, "threshold"_a.none(), "thresholds"_a, "negatives"_a,
          "label_negatives"_a, "cache_dir"_a, nb::keep_alive<1, 2>())
      .def_prop_ro("labels", &MultiLabelClassifier::labels)
      .def_prop_ro("thresholds", &MultiLabelClassifier::thresholds)
      .def(
          "tag",
          [](const MultiLabelClassifier& c, const FloatIn& e, size_t dim, size_t top_k) {
            check_dim(e, dim);
            std::vector<std::vector<TagTuple>> out(e.shape(0));
            nb::gil_scoped_release unlocked;
            for (size_t i = 0; i < out.size(); ++i) out[i] = tag_tuples(c.tag(e.data() + i * e.shape(1), top_k));
            return out;
          },
          "embeddings"_a, "dim"_a, "top_k"_a);

  nb::class_<Moderator>(m, "Moderator")
      .def(
          "__init__",
          [](Moderator* self, const Model& model, const std::string& path, const std::optional<std::string>& text,
             const std::string& cache_dir) {
            ClassifierOptions o;
            o.cache_dir = cache_dir;
            nb::gil_scoped_release unlocked;
            if (text) new (self) Moderator(Moderator::parse(model, *text, path, o));
            else new (self) Moderator(Moderator::load(model, path, o));
          },
          "model"_a, "path"_a, "text"_a.none(), "cache_dir"_a, nb::keep_alive<1, 2>())
      .def_prop_ro("categories", &Moderator::categories)
      .def(
          "moderate",
          [](const Moderator& mod, const FloatIn& e, size_t dim) {
            check_dim(e, dim);
            std::vector<std::vector<TagTuple>> out(e.shape(0));
            nb::gil_scoped_release unlocked;
            for (size_t i = 0; i < out.size(); ++i) out[i] = tag_tuples(mod.moderate(e.data() + i * e.shape(1)));
            return out;
          },
          "embeddings"_a, "dim"_a);

  bind_index(m);
}
