#include "server/server.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "classify/few_shot.h"
#include "classify/label_sets.h"
#include "classify/zero_shot.h"
#include "eval/thumbnail.h"
#include "image/image.h"
#include "index/embeddings.h"
#include "index/query.h"
#include "index/search.h"
#include "index/store.h"
#include "server/admission.h"
#include "server/batcher.h"
#include "server/classifier_cache.h"
#include "server/codec.h"
#include "server/http.h"
#include "server/label_builds.h"
#include "server/metrics.h"
#include "server/request.h"
#include "util/mapped_file.h"
#include "zeroshot/explain.h"
#include "zeroshot/tagging.h"
#include "zeroshot/version.h"

extern const unsigned char zeroshot_web_index_html[];
extern const size_t zeroshot_web_index_html_size;

namespace zeroshot::server {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A float as the shortest decimal that reads back as the same float (so JSON carries no float->double noise).
double jf(float f) {
  if (!std::isfinite(f)) return 0;
  char b[32];
  const auto r = std::to_chars(b, b + sizeof b, f);
  return std::strtod(std::string(b, r.ptr).c_str(), nullptr);
}

void send_json(HttpResponse& res, int status, const json& j) {
  res.status = status;
  res.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  res.content_type = "application/json";
}

void send_error(HttpResponse& res, int status, const std::string& message) {
  send_json(res, status, json{{"error", message}});
}

constexpr const char* kThumbnailPrefix = "/v1/thumbnail/";
constexpr const char* kImagePrefix = "/v1/image/";

// The route name in metrics: the pattern, so that ids in paths do not make new series.
std::string route_of(const std::string& path) {
  static const char* known[] = {"/",          "/healthz",       "/metrics",
                                "/v1/models", "/v1/label_sets", "/v1/classify",
                                "/v1/embed",  "/v1/search",     "/v1/moderate"};
  for (const char* k : known)
    if (path == k) return k;
  if (path == "/v1/explain") return path;
  if (path.rfind("/v1/thumbnail/", 0) == 0) return "/v1/thumbnail";
  if (path.rfind("/v1/image/", 0) == 0) return "/v1/image";
  return "other";
}

Body body_of(const HttpRequest& req) {
  Body b;
  if (req.multipart) {
    b.multipart = true;
    b.parts = req.parts;
  } else {
    b.json = &req.body;
  }
  return b;
}

void normalize(std::vector<float>* v) {
  double s = 0;
  for (float x : *v) s += static_cast<double>(x) * x;
  const float inv = s > 0 ? static_cast<float>(1.0 / std::sqrt(s)) : 0.f;
  for (float& x : *v) x *= inv;
}

json floats(const std::vector<float>& v) {
  json a = json::array();
  for (float x : v) a.push_back(jf(x));
  return a;
}

// The classifier cache's key: a built-in set by its name, typed labels by themselves; the templates; the kind.
std::string classifier_key(bool multi, const std::string& label_set,
                           const std::vector<std::vector<std::string>>& classes,
                           const std::vector<std::string>& templates) {
  std::vector<std::string> shown;
  if (label_set.empty())
    for (const auto& c : classes) shown.push_back(c[0]);
  return cache_key(multi ? "multi" : "softmax", {{label_set}, shown, templates});
}

}  // namespace

struct Server::Impl {
  Impl(const Model& m, ServerOptions o)
      : model(m),
        opt(std::move(o)),
        batcher(m, BatcherOptions{opt.max_batch, std::chrono::milliseconds(opt.max_wait_ms), opt.max_queue}, &metrics),
        classifiers(opt.classifier_cache),
        taggers(opt.classifier_cache) {
    limits.max_labels = opt.max_labels;
    limits.max_label_bytes = opt.max_label_bytes;
    limits.max_templates = opt.max_templates;
    limits.max_texts = opt.max_texts;
    limits.max_images = opt.max_images;
    copt.cache_dir = opt.label_cache_dir;
  }

  const Model& model;
  ServerOptions opt;
  Limits limits;
  ClassifierOptions copt;
  Metrics metrics;
  Batcher batcher;
  LruCache<ZeroShotClassifier> classifiers;
  LruCache<MultiLabelClassifier> taggers;
  std::optional<Moderator> moderator;
  std::map<std::string, classify::LoadedHead> heads;  // read-only after start-up
  std::unique_ptr<index::Store> store;                // SQLite connection: one request at a time
  std::mutex store_mu;
  std::optional<index::EmbeddingsIndex> embeddings;  // /v1/search over an embedding folder (thread-safe)
  std::unique_ptr<HttpServer> http;
  Budget body_budget{opt.max_inflight_body_bytes};
  Budget pixel_budget{opt.max_inflight_pixels};
  LabelBuilds label_builds;  // last: its threads use the caches above, and it joins them when destroyed

  void setup();

  // Decodes (on this thread, with the model's pixel limit checked before decoding) and queues for the encoder.
  std::vector<std::future<std::vector<float>>> submit(const std::vector<ImageInput>& images) {
    std::vector<std::vector<float>> px;
    px.reserve(images.size());
    auto arrival = batcher.announce(images.size());  // the encoder waits for these while they decode
    for (const auto& in : images) {
      // Only one image of a request is decoded at a time (the rest are 224 x 224 floats by then): admit each.
      const auto ticket = admit_pixels(in);
      px.push_back(model.preprocess_image_memory(in.bytes.data(), in.bytes.size(), in.name));
    }
    return batcher.submit(std::move(px), arrival);
  }
  std::vector<float> wait(std::future<std::vector<float>>& f) {
    const auto d = std::chrono::duration<double>(opt.request_timeout_s);
    if (f.wait_for(d) != std::future_status::ready)
      throw HttpError(504, "the encoder did not answer within " + std::to_string(opt.request_timeout_s) + " s");
    return f.get();
  }
  // Admission by the memory of all requests in flight: the body's bytes while it is parsed and handled, each
  // image's pixels (read from its header) while it is decoded. Throw Overloaded (503 + Retry-After) past them.
  Budget::Ticket admit_body(size_t bytes) {
    auto t = body_budget.try_acquire(bytes);
    if (!t)
      throw Overloaded("busy: request bodies of " + std::to_string(body_budget.in_use() >> 20) +
                       " MiB are being handled (the limit is --max-inflight-body-mb " +
                       std::to_string(body_budget.capacity() >> 20) + "); retry");
    return std::move(*t);
  }
  Budget::Ticket admit_pixels(const ImageInput& in) {
    const uint64_t px = pixels_to_admit(in.bytes.data(), in.bytes.size(), opt.max_image_pixels);
    auto t = pixel_budget.try_acquire(px);
    if (!t)
      throw Overloaded("busy: " + std::to_string(pixel_budget.in_use() / 1'000'000) +
                       " megapixels are being decoded (the limit is --max-inflight-megapixels " +
                       std::to_string(pixel_budget.capacity() / 1'000'000) + "); retry");
    return std::move(*t);
  }

  // Label embeddings of more than opt.inline_prompts prompts, not in the cache yet: built on a thread of their own
  // (label_builds.h) while this request is answered 503 + Retry-After; smaller ones are built by the request.
  template <class T, class Make>
  void build_large_in_background(LruCache<T>& cache, const std::string& key, const ClassifyRequest& r, Make make) {
    size_t names = 0;
    for (const auto& c : r.classes) names += c.size();
    const size_t prompts = names * std::max<size_t>(1, r.templates.size());
    if (prompts <= opt.inline_prompts || opt.classifier_cache == 0 || cache.contains(key)) return;
    const auto st = label_builds.start(key, [&cache, key, make] {
      bool hit = false;
      cache.get(key, make, &hit);
    });
    if (!st.error.empty()) throw HttpError(500, "encoding the labels failed: " + st.error);
    const std::string what =
        (r.label_set.empty() ? std::to_string(r.classes.size()) + " labels" : "label set " + r.label_set) + " (" +
        std::to_string(prompts) + " prompts)";
    if (st.refused) throw Overloaded("busy: other label sets are being encoded; retry " + what + " later", 5);
    char ago[32];
    std::snprintf(ago, sizeof ago, "%.0f", st.elapsed_s);
    throw Overloaded("encoding the prompts of " + what + ", started " + ago +
                         " s ago; retry shortly (zeroshot serve --preload-labels encodes built-in sets at start-up)",
                     2);
  }

  std::vector<float> embed_one(const ImageInput& in) {
    auto fs = submit({in});
    return wait(fs[0]);
  }

  // With an API key set: true when the request carries it; otherwise answers 401.
  bool authorized(const HttpRequest& req, HttpResponse& res) const {
    if (opt.api_key.empty()) return true;
    const std::string auth = req.header("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) == 0 && constant_time_equal(std::string_view(auth).substr(prefix.size()), opt.api_key))
      return true;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, auth.empty() ? "missing API key: send \"Authorization: Bearer <key>\"" : "wrong API key");
    return false;
  }

  void classify(const HttpRequest& req, HttpResponse& res);
  void embed(const HttpRequest& req, HttpResponse& res);
  void search(const HttpRequest& req, HttpResponse& res);
  void moderate(const HttpRequest& req, HttpResponse& res);
  void explain_top(const HttpRequest& req, HttpResponse& res);
  void thumbnail(const HttpRequest& req, HttpResponse& res);
  void full_image(const HttpRequest& req, HttpResponse& res);
  void send_indexed_image(const HttpRequest& req, HttpResponse& res, int max_side, int quality);
  json models() const;
  void get_models(const HttpRequest&, HttpResponse& res) { send_json(res, 200, models()); }
  void get_metrics(const HttpRequest&, HttpResponse& res) {
    Gauges g;
    g.queue_depth = batcher.depth();
    g.in_flight = http ? http->in_flight() : 0;
    g.classifier_cache_entries = classifiers.size() + taggers.size();
    res.body = metrics.render(g);
    res.content_type = "text/plain; version=0.0.4";
  }
  void get_label_sets(const HttpRequest&, HttpResponse& res) {
    json a = json::array();
    for (const auto& name : classify::label_set_names()) {
      const classify::LabelSet* s = classify::find_label_set(name);
      if (s && s->modality == "image") a.push_back({{"name", s->name}, {"classes", s->classes.size()}});
    }
    send_json(res, 200, json{{"label_sets", a}});
  }
};

namespace {

using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;

// The request's body as received: JSON text, or multipart parts.
size_t body_bytes(const HttpRequest& req) {
  size_t n = req.body.size();
  for (const auto& part : req.parts) n += part.content.size();
  return n;
}

// Runs a route that needs the API key (when one is set), turning every exception into a JSON error answer. The key
// is checked once the body has been read: the connection stays in step for the next request.
template <class F>
Handler guarded(Server::Impl* s, F f) {
  return [s, f](const HttpRequest& req, HttpResponse& res) {
    try {
      if (!s->authorized(req, res)) return;
      const size_t bytes = body_bytes(req);
      struct TrimAfter {  // destroyed after the ticket and the handler's memory
        size_t bytes;
        ~TrimAfter() { release_memory_after(bytes); }
      } trim{bytes};
      const auto ticket = s->admit_body(bytes);
      (s->*f)(req, res);
    } catch (const Overloaded& e) {
      res.set_header("Retry-After", std::to_string(e.retry_after_s));
      send_error(res, e.status, e.what());
    } catch (const HttpError& e) {
      send_error(res, e.status, e.what());
    } catch (const QueueFull& e) {
      s->metrics.observe_rejected_full();
      res.set_header("Retry-After", "1");
      send_error(res, 503, e.what());
    } catch (const ShuttingDown& e) {
      res.set_header("Connection", "close");
      send_error(res, 503, e.what());
    } catch (const Error& e) {
      send_error(res, 400, e.what());  // the library's errors name the bad input
    } catch (const std::bad_alloc&) {
      send_error(res, 503, "out of memory");
    } catch (const std::exception& e) {
      send_error(res, 500, e.what());
    }
  };
}

}  // namespace

void Server::Impl::classify(const HttpRequest& req, HttpResponse& res) {
  ClassifyRequest r = parse_classify(body_of(req), limits);
  if (!r.head.empty()) {
    auto h = heads.find(r.head);
    if (h == heads.end()) throw HttpError(400, "head: no head \"" + r.head + "\" (serve --head NAME=FILE names them)");
    auto fut = submit({r.image});
    const auto emb = wait(fut[0]);
    json result = json::array();
    for (const auto& s : classify::rank(h->second.labels, classify::head_scores(h->second.head, emb.data()), r.top_k))
      result.push_back({{"label", s.label}, {"score", jf(s.score)}});
    if (r.hf) return send_json(res, 200, result);
    return send_json(res, 200, json{{"result", result}});
  }
  auto fut = submit({r.image});  // the encoder works while the label embeddings are looked up
  const std::string key = classifier_key(r.multi_label, r.label_set, r.classes, r.templates);
  const auto make_tagger = [this, classes = r.classes, templates = r.templates] {
    MultiLabelOptions mo;
    mo.classifier = copt;
    return std::make_shared<const MultiLabelClassifier>(model, classes, templates, mo);
  };
  const auto make_classifier = [this, classes = r.classes, templates = r.templates] {
    return std::make_shared<const ZeroShotClassifier>(model, classes, templates, copt);
  };
  if (r.multi_label) {
    build_large_in_background(taggers, key, r, make_tagger);
  } else {
    build_large_in_background(classifiers, key, r, make_classifier);
  }
  bool hit = false;
  json result = json::array();
  if (r.multi_label) {
    auto tagger = taggers.get(key, make_tagger, &hit);
    metrics.observe_cache(hit);
    const auto emb = wait(fut[0]);
    for (const auto& t : tagger->tag(emb.data(), r.top_k))
      result.push_back(
          {{"label", t.label}, {"score", jf(t.score)}, {"threshold", jf(t.threshold)}, {"flagged", t.flagged}});
  } else {
    auto clf = classifiers.get(key, make_classifier, &hit);
    metrics.observe_cache(hit);
    const auto emb = wait(fut[0]);
    for (const auto& s : clf->classify(emb.data(), r.top_k))
      result.push_back({{"label", s.label}, {"score", jf(s.score)}});
  }
  if (r.hf) return send_json(res, 200, result);
  send_json(res, 200, json{{"result", result}});
}

void Server::Impl::embed(const HttpRequest& req, HttpResponse& res) {
  EmbedRequest r = parse_embed(body_of(req), limits);
  auto futs = submit(r.images);
  json out = json::array();
  if (!r.texts.empty()) {
    const Embeddings e = model.embed_texts(r.texts);
    for (size_t i = 0; i < e.rows; ++i) {
      std::vector<float> v(e.row(i), e.row(i) + e.dim);
      if (r.normalize) normalize(&v);
      out.push_back({{"kind", "text"}, {"input", r.texts[i]}, {"embedding", floats(v)}});
    }
  }
  for (size_t i = 0; i < futs.size(); ++i) {
    std::vector<float> v = wait(futs[i]);
    if (r.normalize) normalize(&v);
    out.push_back({{"kind", "image"}, {"input", r.images[i].name}, {"embedding", floats(v)}});
  }
  send_json(res, 200,
            json{{"model", model.name()}, {"dim", model.embedding_dim()}, {"normalized", r.normalize}, {"data", out}});
}

void Server::Impl::search(const HttpRequest& req, HttpResponse& res) {
  if (!store && !embeddings)
    throw HttpError(404, "search is off: start the server with --index DB or --embeddings FOLDER");
  SearchRequest r = parse_search(body_of(req), limits);
  std::vector<ImageInput> images;
  std::vector<std::string> texts;
  for (const auto& t : r.terms) {
    if (t.image) images.push_back(t.img);
    else texts.push_back(t.text);
  }
  auto futs = submit(images);
  Embeddings te;
  if (!texts.empty()) te = model.embed_texts(texts);
  std::vector<std::vector<float>> ie;
  ie.reserve(futs.size());
  for (auto& f : futs) ie.push_back(wait(f));
  std::vector<index::QueryTerm> terms;
  std::vector<const float*> embs;
  size_t ti = 0, ii = 0;
  for (const auto& t : r.terms) {
    terms.push_back(index::QueryTerm{t.weight, t.image, t.image ? t.img.name : t.text});
    embs.push_back(t.image ? ie[ii++].data() : te.row(ti++));
  }
  std::vector<float> q;
  try {
    q = index::combine_terms(terms, embs, model.embedding_dim());
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
  if (embeddings) {
    // The same answer as over an index database, plus each row's caption where the metadata has one.
    std::vector<index::EmbeddingHit> hits;
    try {
      hits = embeddings->search(q.data(), r.top_k);
    } catch (const Error& e) {
      throw HttpError(500, e.what());
    }
    json out = json::array();
    size_t rank = 0;
    for (const auto& h : hits) {
      json row = {{"rank", ++rank}, {"id", h.id}, {"path", h.path}, {"score", jf(h.score)}};
      if (!h.caption.empty()) row["caption"] = h.caption;
      out.push_back(std::move(row));
    }
    send_json(res, 200, json{{"results", out}, {"candidates", embeddings->size()}});
    return;
  }
  index::SearchOptions so;
  so.top_k = r.top_k;
  std::vector<index::SearchResult> found;
  size_t candidates = 0;
  try {
    std::lock_guard<std::mutex> lock(store_mu);
    index::SearchInfo info;
    found = index::search(*store, q.data(), so, &info);
    candidates = info.candidates;
  } catch (const Error& e) {
    throw HttpError(500, e.what());
  }
  json out = json::array();
  size_t rank = 0;
  for (const auto& f : found) out.push_back({{"rank", ++rank}, {"id", f.id}, {"path", f.path}, {"score", jf(f.score)}});
  send_json(res, 200, json{{"results", out}, {"candidates", candidates}});
}

void Server::Impl::moderate(const HttpRequest& req, HttpResponse& res) {
  if (!moderator) throw HttpError(404, "moderation is off: start the server with --policy FILE");
  const ImageInput in = parse_image_only(body_of(req));
  const auto emb = embed_one(in);
  json flagged = json::array(), scores = json::object();
  for (const auto& c : moderator->moderate(emb.data())) {
    scores[c.label] = jf(c.score);
    if (c.flagged) flagged.push_back({{"category", c.label}, {"score", jf(c.score)}, {"threshold", jf(c.threshold)}});
  }
  send_json(res, 200, json{{"flagged", flagged}, {"scores", scores}});
}

// The classify request's labels and image; the scores plus the explanation map of the top label (zeroshot/explain.h,
// default options). The patch-token forward runs on this worker thread, not through the batcher: it is one image
// with its own outputs, and the page asks for it only on request.
void Server::Impl::explain_top(const HttpRequest& req, HttpResponse& res) {
  const ClassifyRequest r = parse_classify(body_of(req), limits);
  if (r.multi_label) throw HttpError(400, "multi_label: explanation maps explain a softmax over the labels");
  if (model.patch_grid() <= 0)
    throw HttpError(400, std::string("a ") + model.model_type() +
                             " model has no patch tokens to explain with (explanation maps need a CLIP ViT)");
  std::vector<float> px;
  {
    const auto ticket = admit_pixels(r.image);
    px = model.preprocess_image_memory(r.image.bytes.data(), r.image.bytes.size(), r.image.name);
  }
  const std::string key = classifier_key(false, r.label_set, r.classes, r.templates);
  const auto make_classifier = [this, classes = r.classes, templates = r.templates] {
    return std::make_shared<const ZeroShotClassifier>(model, classes, templates, copt);
  };
  build_large_in_background(classifiers, key, r, make_classifier);
  bool hit = false;
  const auto clf = classifiers.get(key, make_classifier, &hit);
  metrics.observe_cache(hit);
  const std::vector<LabelMap> maps = zeroshot::explain(model, *clf, px.data());
  std::vector<const LabelMap*> order;
  order.reserve(maps.size());
  for (const LabelMap& m : maps) order.push_back(&m);
  std::stable_sort(order.begin(), order.end(),
                   [](const LabelMap* a, const LabelMap* b) { return a->score > b->score; });
  json result = json::array();
  for (size_t i = 0; i < order.size() && (r.top_k == 0 || i < r.top_k); ++i)
    result.push_back({{"label", order[i]->label}, {"score", jf(order[i]->score)}});
  const LabelMap& top = *order.front();
  json rows = json::array();
  for (int y = 0; y < top.grid; ++y)
    rows.push_back(floats(std::vector<float>(top.values.begin() + static_cast<long>(y) * top.grid,
                                             top.values.begin() + static_cast<long>(y + 1) * top.grid)));
  send_json(res, 200,
            json{{"result", result},
                 {"map",
                  {{"label", top.label},
                   {"method", "surgery"},
                   {"grid", {top.grid, top.grid}},
                   {"min", jf(top.min)},
                   {"max", jf(top.max)},
                   {"values", rows}}}});
}

// Only images that are rows of the index are served, by row id: the path comes from the database, never from the
// request.
void Server::Impl::thumbnail(const HttpRequest& req, HttpResponse& res) { send_indexed_image(req, res, 256, 85); }
void Server::Impl::full_image(const HttpRequest& req, HttpResponse& res) { send_indexed_image(req, res, 2048, 90); }

// A row of the index as a JPEG of at most max_side px (decoded and oriented as for the index: never the file's own
// bytes, so no metadata leaves the server), its decode admitted against the pixel budget like an upload's.
void Server::Impl::send_indexed_image(const HttpRequest& req, HttpResponse& res, int max_side, int quality) {
  if (!store && embeddings)  // an embedding folder's paths may live on other machines (a cluster's storage)
    throw HttpError(404, "images are served from a photo index (--index DB), not an embedding folder (--embeddings)");
  if (!store) throw HttpError(404, "search is off: start the server with --index DB");
  const std::string id_text = req.path.substr(req.path.find_last_of('/') + 1);  // the route matched prefix + digits
  int64_t id = 0;
  const auto r = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
  if (r.ec != std::errc() || r.ptr != id_text.data() + id_text.size()) throw HttpError(404, "no such image");
  std::string path;
  {
    std::lock_guard<std::mutex> lock(store_mu);
    path = store->path_of(id);
  }
  if (path.empty()) throw HttpError(404, "no image with id " + id_text + " in the index");
  image::DecodeOptions d;
  d.max_pixels = opt.max_image_pixels;
  std::vector<uint8_t> jpeg;
  try {
    ImageInput file;
    const std::string bytes = util::read_file(path);
    file.bytes.assign(bytes.begin(), bytes.end());
    const auto ticket = admit_pixels(file);
    jpeg = eval::encode_jpeg(
        eval::shrink_to_fit(image::decode_memory(file.bytes.data(), file.bytes.size(), path, d), max_side), quality);
  } catch (const Error& e) {
    throw HttpError(404, std::string("image ") + id_text + " can no longer be read");
  }
  res.set_header("Cache-Control", "private, max-age=60");
  res.body.assign(jpeg.begin(), jpeg.end());
  res.content_type = "image/jpeg";
}

json Server::Impl::models() const {
  json m = {{"id", model.name()},
            {"object", "model"},
            {"model_type", model.model_type()},
            {"fingerprint", model.fingerprint()},
            {"embedding_dim", model.embedding_dim()},
            {"image_size", model.image_size()},
            {"precision", opt.precision},
            {"logit_scale", jf(model.logit_scale())},
            {"default_template", model.default_template()}};
  json j = {{"object", "list"}, {"data", json::array({m})}};
  j["batching"] = {{"max_batch", opt.max_batch}, {"max_wait_ms", opt.max_wait_ms}, {"max_queue", opt.max_queue}};
  j["limits"] = {{"max_body_bytes", opt.max_body_bytes}, {"max_labels", opt.max_labels},
                 {"max_templates", opt.max_templates},   {"max_texts", opt.max_texts},
                 {"max_images", opt.max_images},         {"request_timeout_s", opt.request_timeout_s}};
  j["search"] = {{"enabled", store != nullptr || embeddings.has_value()}};
  j["moderation"] = {{"enabled", moderator.has_value()},
                     {"categories", moderator ? moderator->categories() : std::vector<std::string>{}}};
  return j;
}

// The routes: method, path (or path prefix followed by digits: thumbnails), whether the handler may take time (runs
// on a worker thread, not the event thread).
struct Route {
  const char* method;
  const char* path;
  bool prefix;
  bool slow;
  Handler handler;
};

void Server::Impl::setup() {
  std::vector<Route> routes;
  routes.push_back({"GET", "/", false, false, [](const HttpRequest&, HttpResponse& res) {
                      res.static_body = zeroshot_web_index_html;
                      res.static_size = zeroshot_web_index_html_size;
                      res.content_type = "text/html; charset=utf-8";
                    }});
  routes.push_back(
      {"GET", "/healthz", false, false, [this](const HttpRequest&, HttpResponse& res) {
         send_json(res, 200, json{{"status", "ok"}, {"model", model.name()}, {"version", ZEROSHOT_VERSION}});
       }});
  routes.push_back({"GET", "/metrics", false, false, guarded(this, &Impl::get_metrics)});
  routes.push_back({"GET", "/v1/models", false, false, guarded(this, &Impl::get_models)});
  routes.push_back({"GET", "/v1/label_sets", false, false, guarded(this, &Impl::get_label_sets)});
  routes.push_back({"POST", "/v1/classify", false, true, guarded(this, &Impl::classify)});
  routes.push_back({"POST", "/v1/embed", false, true, guarded(this, &Impl::embed)});
  routes.push_back({"POST", "/v1/search", false, true, guarded(this, &Impl::search)});
  routes.push_back({"POST", "/v1/moderate", false, true, guarded(this, &Impl::moderate)});
  routes.push_back({"POST", "/v1/explain", false, true, guarded(this, &Impl::explain_top)});
  routes.push_back({"GET", kThumbnailPrefix, true, true, guarded(this, &Impl::thumbnail)});
  routes.push_back({"GET", kImagePrefix, true, true, guarded(this, &Impl::full_image)});

  // The route of a path: nullptr when no route has it.
  auto find = [routes](const std::string& path, const std::string& method) -> std::pair<const Route*, std::string> {
    const Route* found = nullptr;
    std::string allow;
    for (const Route& r : routes) {
      bool match = path == r.path;
      if (r.prefix) {
        const size_t n = std::strlen(r.path);
        match = path.size() > n && path.compare(0, n, r.path) == 0 &&
                path.find_first_not_of("0123456789", n) == std::string::npos;
      }
      if (!match) continue;
      allow +=
          (allow.empty() ? "" : ", ") + std::string(r.method) + (std::strcmp(r.method, "GET") == 0 ? ", HEAD" : "");
      // HEAD is GET without the body (the transport leaves the body out).
      if (method == r.method || (method == "HEAD" && std::strcmp(r.method, "GET") == 0)) found = &r;
    }
    return {found, allow};
  };
  auto shared = std::make_shared<decltype(find)>(std::move(find));

  HttpOptions h;
  h.host = opt.host;
  h.port = opt.port;
  h.max_body_bytes = opt.max_body_bytes;
  h.workers = opt.http_threads;
  h.max_connections = opt.max_connections;
  h.max_connections_per_client = opt.max_connections_per_client;
  h.header_timeout_s = opt.header_timeout_s;
  h.body_timeout_s = opt.body_timeout_s;
  HttpHandlers hh;
  hh.on_worker = [shared](const HttpRequest& req) {
    const Route* r = (*shared)(req.path, req.method).first;
    return r && r->slow;
  };
  hh.handle = [shared](const HttpRequest& req, HttpResponse* res) {
    const auto [r, allow] = (*shared)(req.path, req.method);
    if (r) {
      try {
        r->handler(req, *res);
      } catch (const std::exception& e) {  // the guarded routes catch their own; the others should not throw
        send_error(*res, 500, e.what());
      }
    } else if (!allow.empty()) {
      res->set_header("Allow", allow);
      send_error(*res, 405, "method " + req.method + " not allowed on " + req.path + ": use " + allow);
    } else {
      send_error(*res, 404, "no such route: " + req.method + " " + req.path);
    }
  };
  hh.error = [](int status, const std::string& message, HttpResponse* res) { send_error(*res, status, message); };
  hh.log = [this](const HttpRequest& req, const HttpResponse& res, double seconds) {
    metrics.observe_request(route_of(req.path), res.status, seconds);
  };
  http = std::make_unique<HttpServer>(h, std::move(hh));
}

Server::Server(const Model& model, ServerOptions opt) {
  if (model.modality() != Modality::Image)
    throw Error(model.name(),
                std::string("serve supports image models; this is an audio model (") + model.model_type() + ")");
  map_large_allocations();  // admission.h: large request buffers go back to the system when freed
  impl_ = std::make_unique<Impl>(model, std::move(opt));
  Impl& s = *impl_;
  if (!s.opt.policy_path.empty()) s.moderator.emplace(Moderator::load(model, s.opt.policy_path, s.copt));
  for (const auto& [name, file] : s.opt.heads) {
    if (name.empty() || s.heads.count(name)) throw Error("--head " + name + "=" + file, "an empty or repeated name");
    s.heads.emplace(name, classify::load_head(file, model.fingerprint()));
  }
  if (!s.opt.index_db.empty()) {
    const index::ModelId id{model.name(), model.fingerprint(), model.embedding_dim()};
    s.store = std::make_unique<index::Store>(index::Store::open(s.opt.index_db, id, /*create=*/false));
  }
  if (!s.opt.embeddings_dir.empty()) {
    if (s.store) throw Error(s.opt.embeddings_dir, "search one of an index database or an embedding folder, not both");
    s.embeddings.emplace(index::EmbeddingsIndex::open(s.opt.embeddings_dir, s.opt.embeddings_index));
    s.embeddings->check_model(model);
  }
  s.setup();
}

Server::~Server() {
  if (impl_) impl_->batcher.stop();
}

void Server::preload_labels(const std::string& spec, const std::function<void(const std::string&)>& note) {
  Impl& s = *impl_;
  const size_t colon = spec.find(':');
  const std::string set_name = spec.substr(0, colon);
  const classify::LabelSet* set = classify::find_label_set(set_name);
  if (!set || set->modality != "image")
    throw Error("--preload-labels " + spec,
                "no built-in image label set \"" + set_name + "\" (see zeroshot label-sets)");
  std::vector<std::string> templates;
  std::string template_name;
  if (colon != std::string::npos) {
    template_name = spec.substr(colon + 1);
    if (!classify::find_template_set(template_name, &templates))
      throw Error("--preload-labels " + spec,
                  "no built-in template set \"" + template_name + "\" (imagenet80, imagenet7, ...)");
  }
  if (s.opt.classifier_cache == 0) throw Error("--preload-labels " + spec, "the classifier cache is off (size 0)");
  size_t names = 0;
  for (const auto& c : set->classes) names += c.size();
  const std::string what = "label set " + set->name + (template_name.empty() ? "" : " x " + template_name);
  if (note)
    note("encoding " + what + ": " + std::to_string(set->classes.size()) + " classes, " +
         std::to_string(names * std::max<size_t>(1, templates.size())) + " prompts");
  const auto start = Clock::now();
  bool hit = false;
  const std::string key = classifier_key(false, set->name, set->classes, templates);
  s.classifiers.get(
      key, [&] { return std::make_shared<const ZeroShotClassifier>(s.model, set->classes, templates, s.copt); }, &hit);
  char took[32];
  std::snprintf(took, sizeof took, "%.1f", std::chrono::duration<double>(Clock::now() - start).count());
  if (note) note(what + " ready in " + took + " s");
}

int Server::bind() { return impl_->http->bind(); }

void Server::run() {
  impl_->http->run();  // returns once stopped and every request in flight is answered
  impl_->batcher.stop();
}

void Server::stop() { impl_->http->stop(); }

}  // namespace zeroshot::server
