#include "server/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <charconv>
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "classify/label_sets.h"
#include "eval/thumbnail.h"
#include "image/image.h"
#include "index/query.h"
#include "index/search.h"
#include "index/store.h"
#include "server/admission.h"
#include "server/batcher.h"
#include "server/classifier_cache.h"
#include "server/codec.h"
#include "server/label_builds.h"
#include "server/metrics.h"
#include "server/request.h"
#include "util/mapped_file.h"
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

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, json{{"error", message}});
}

// The route name in metrics: the pattern, so that ids in paths do not make new series.
std::string route_of(const std::string& path) {
  static const char* known[] = {"/",         "/healthz",     "/metrics",     "/v1/models", "/v1/label_sets",
                                "/v1/classify", "/v1/embed", "/v1/search",   "/v1/moderate"};
  for (const char* k : known)
    if (path == k) return k;
  if (path.rfind("/v1/thumbnail/", 0) == 0) return "/v1/thumbnail";
  if (path.rfind("/v1/image/", 0) == 0) return "/v1/image";
  return "other";
}

// Per-thread state of the request in hand (cpp-httplib serves a request on one thread from routing to logging).
struct RequestClock {
  Clock::time_point start;
  bool active = false;
};
thread_local RequestClock t_request;

Body body_of(const httplib::Request& req) {
  Body b;
  if (req.is_multipart_form_data()) {
    b.multipart = true;
    for (const auto& [name, f] : req.files) b.parts.push_back(Part{name, f.filename, f.content_type, f.content});
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
std::string classifier_key(bool multi, const std::string& label_set, const std::vector<std::vector<std::string>>& classes,
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
  std::unique_ptr<index::Store> store;  // SQLite connection: one request at a time
  std::mutex store_mu;
  httplib::Server http;
  std::atomic<bool> draining{false};
  std::atomic<bool> running{false};
  std::atomic<size_t> in_flight{0};
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
    const std::string what = (r.label_set.empty() ? std::to_string(r.classes.size()) + " labels" : "label set " + r.label_set) +
                             " (" + std::to_string(prompts) + " prompts)";
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
  bool authorized(const httplib::Request& req, httplib::Response& res) const {
    if (opt.api_key.empty()) return true;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) == 0 && constant_time_equal(std::string_view(auth).substr(prefix.size()), opt.api_key))
      return true;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, auth.empty() ? "missing API key: send \"Authorization: Bearer <key>\"" : "wrong API key");
    return false;
  }

  void classify(const httplib::Request& req, httplib::Response& res);
  void embed(const httplib::Request& req, httplib::Response& res);
  void search(const httplib::Request& req, httplib::Response& res);
  void moderate(const httplib::Request& req, httplib::Response& res);
  void thumbnail(const httplib::Request& req, httplib::Response& res);
  void full_image(const httplib::Request& req, httplib::Response& res);
  void send_indexed_image(const httplib::Request& req, httplib::Response& res, int max_side, int quality);
  json models() const;
  void get_models(const httplib::Request&, httplib::Response& res) { send_json(res, 200, models()); }
  void get_metrics(const httplib::Request&, httplib::Response& res) {
    Gauges g;
    g.queue_depth = batcher.depth();
    g.in_flight = in_flight.load();
    g.classifier_cache_entries = classifiers.size() + taggers.size();
    res.set_content(metrics.render(g), "text/plain; version=0.0.4");
  }
  void get_label_sets(const httplib::Request&, httplib::Response& res) {
    json a = json::array();
    for (const auto& name : classify::label_set_names()) {
      const classify::LabelSet* s = classify::find_label_set(name);
      if (s && s->modality == "image") a.push_back({{"name", s->name}, {"classes", s->classes.size()}});
    }
    send_json(res, 200, json{{"label_sets", a}});
  }
};

namespace {

// The request's body as received: JSON text, or multipart parts.
size_t body_bytes(const httplib::Request& req) {
  size_t n = req.body.size();
  for (const auto& [name, f] : req.files) n += f.content.size();
  return n;
}

// Runs a route that needs the API key (when one is set), turning every exception into a JSON error answer. The key
// is checked here rather than before routing so that the request's body has been read: the connection stays in
// step for the next request.
template <class F>
httplib::Server::Handler guarded(Server::Impl* s, F f) {
  return [s, f](const httplib::Request& req, httplib::Response& res) {
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

void Server::Impl::classify(const httplib::Request& req, httplib::Response& res) {
  ClassifyRequest r = parse_classify(body_of(req), limits);
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
      result.push_back({{"label", t.label}, {"score", jf(t.score)}, {"threshold", jf(t.threshold)}, {"flagged", t.flagged}});
  } else {
    auto clf = classifiers.get(key, make_classifier, &hit);
    metrics.observe_cache(hit);
    const auto emb = wait(fut[0]);
    for (const auto& s : clf->classify(emb.data(), r.top_k)) result.push_back({{"label", s.label}, {"score", jf(s.score)}});
  }
  if (r.hf) return send_json(res, 200, result);
  send_json(res, 200, json{{"result", result}});
}

void Server::Impl::embed(const httplib::Request& req, httplib::Response& res) {
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
  send_json(res, 200, json{{"model", model.name()}, {"dim", model.embedding_dim()}, {"normalized", r.normalize},
                           {"data", out}});
}

void Server::Impl::search(const httplib::Request& req, httplib::Response& res) {
  if (!store) throw HttpError(404, "search is off: start the server with --index DB");
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
  for (const auto& f : found)
    out.push_back({{"rank", ++rank}, {"id", f.id}, {"path", f.path}, {"score", jf(f.score)}});
  send_json(res, 200, json{{"results", out}, {"candidates", candidates}});
}

void Server::Impl::moderate(const httplib::Request& req, httplib::Response& res) {
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

// Only images that are rows of the index are served, by row id: the path comes from the database, never from the
// request.
void Server::Impl::thumbnail(const httplib::Request& req, httplib::Response& res) { send_indexed_image(req, res, 256, 85); }
void Server::Impl::full_image(const httplib::Request& req, httplib::Response& res) { send_indexed_image(req, res, 2048, 90); }

// A row of the index as a JPEG of at most max_side px (decoded and oriented as for the index: never the file's own
// bytes, so no metadata leaves the server), its decode admitted against the pixel budget like an upload's.
void Server::Impl::send_indexed_image(const httplib::Request& req, httplib::Response& res, int max_side, int quality) {
  if (!store) throw HttpError(404, "search is off: start the server with --index DB");
  const std::string id_text = req.matches[1];
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
    jpeg = eval::encode_jpeg(eval::shrink_to_fit(image::decode_memory(file.bytes.data(), file.bytes.size(), path, d), max_side),
                             quality);
  } catch (const Error& e) {
    throw HttpError(404, std::string("image ") + id_text + " can no longer be read");
  }
  res.set_header("Cache-Control", "private, max-age=60");
  res.set_content(std::string(jpeg.begin(), jpeg.end()), "image/jpeg");
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
  j["limits"] = {{"max_body_bytes", opt.max_body_bytes},   {"max_labels", opt.max_labels},
                 {"max_templates", opt.max_templates},     {"max_texts", opt.max_texts},
                 {"max_images", opt.max_images},           {"request_timeout_s", opt.request_timeout_s}};
  j["search"] = {{"enabled", store != nullptr}};
  j["moderation"] = {{"enabled", moderator.has_value()},
                     {"categories", moderator ? moderator->categories() : std::vector<std::string>{}}};
  return j;
}

void Server::Impl::setup() {
  http.new_task_queue = [n = opt.http_threads] { return new httplib::ThreadPool(std::max<size_t>(1, n)); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_read_timeout(10, 0);
  http.set_write_timeout(10, 0);
  http.set_keep_alive_timeout(5);
  http.set_tcp_nodelay(true);  // answers are written as headers + body: no Nagle delay between them

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (t_request.active) --in_flight;  // the previous request on this thread was never logged (its write failed)
    t_request.start = Clock::now();
    t_request.active = true;
    ++in_flight;
    if (draining) {
      res.set_header("Connection", "close");
      send_error(res, 503, "the server is shutting down");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Fills in a JSON body for errors cpp-httplib answers itself (404 no route, 413 too large, 400 unparsable).
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string m;
    switch (res.status) {
      case 404: m = "no such route: " + req.method + " " + req.path; break;
      case 413: m = "request body over the limit of " + std::to_string(opt.max_body_bytes) + " bytes"; break;
      case 414: m = "request line too long"; break;
      case 416: m = "range not satisfiable"; break;
      default: m = "bad request (HTTP " + std::to_string(res.status) + ")"; break;
    }
    send_error(res, res.status, m);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string m = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      m = e.what();
    } catch (...) {
    }
    send_error(res, 500, m);
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    double seconds = -1;
    if (t_request.active) {
      seconds = std::chrono::duration<double>(Clock::now() - t_request.start).count();
      t_request.active = false;
      --in_flight;
    }
    metrics.observe_request(route_of(req.path), res.status, seconds);
  });

  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(reinterpret_cast<const char*>(zeroshot_web_index_html), zeroshot_web_index_html_size,
                    "text/html; charset=utf-8");
  });
  http.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, json{{"status", "ok"}, {"model", model.name()}, {"version", ZEROSHOT_VERSION}});
  });
  http.Get("/metrics", guarded(this, &Impl::get_metrics));
  http.Get("/v1/models", guarded(this, &Impl::get_models));
  http.Get("/v1/label_sets", guarded(this, &Impl::get_label_sets));
  http.Post("/v1/classify", guarded(this, &Impl::classify));
  http.Post("/v1/embed", guarded(this, &Impl::embed));
  http.Post("/v1/search", guarded(this, &Impl::search));
  http.Post("/v1/moderate", guarded(this, &Impl::moderate));
  http.Get(R"(/v1/thumbnail/([0-9]+))", guarded(this, &Impl::thumbnail));
  http.Get(R"(/v1/image/([0-9]+))", guarded(this, &Impl::full_image));
}

Server::Server(const Model& model, ServerOptions opt) {
  if (model.modality() != Modality::Image)
    throw Error(model.name(), std::string("serve supports image models; this is an audio model (") + model.model_type() + ")");
  map_large_allocations();  // admission.h: large request buffers go back to the system when freed
  impl_ = std::make_unique<Impl>(model, std::move(opt));
  Impl& s = *impl_;
  if (!s.opt.policy_path.empty()) s.moderator.emplace(Moderator::load(model, s.opt.policy_path, s.copt));
  if (!s.opt.index_db.empty()) {
    const index::ModelId id{model.name(), model.fingerprint(), model.embedding_dim()};
    s.store = std::make_unique<index::Store>(index::Store::open(s.opt.index_db, id, /*create=*/false));
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
    throw Error("--preload-labels " + spec, "no built-in image label set \"" + set_name + "\" (see zeroshot label-sets)");
  std::vector<std::string> templates;
  std::string template_name;
  if (colon != std::string::npos) {
    template_name = spec.substr(colon + 1);
    if (!classify::find_template_set(template_name, &templates))
      throw Error("--preload-labels " + spec, "no built-in template set \"" + template_name + "\" (imagenet80, imagenet7, ...)");
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
  s.classifiers.get(key, [&] { return std::make_shared<const ZeroShotClassifier>(s.model, set->classes, templates, s.copt); },
                    &hit);
  char took[32];
  std::snprintf(took, sizeof took, "%.1f", std::chrono::duration<double>(Clock::now() - start).count());
  if (note) note(what + " ready in " + took + " s");
}

int Server::bind() {
  Impl& s = *impl_;
  int port = s.opt.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.opt.host);
    if (port < 0) throw Error(s.opt.host, "cannot listen on a free port");
  } else if (!s.http.bind_to_port(s.opt.host, port)) {
    throw Error(s.opt.host + ":" + std::to_string(port), "cannot listen (address in use, or not an address here)");
  }
  return port;
}

void Server::run() {
  Impl& s = *impl_;
  s.running = true;
  if (!s.draining) s.http.listen_after_bind();  // returns once stopped and every worker is done
  s.running = false;
  s.batcher.stop();
}

void Server::stop() {
  Impl& s = *impl_;
  s.draining = true;
  // listen_after_bind() marks the server running only once its loop starts; wait for that so stop() is not lost.
  for (int i = 0; i < 2000 && s.running && !s.http.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  s.http.stop();
}

}  // namespace zeroshot::server
