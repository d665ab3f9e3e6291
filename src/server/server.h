// The HTTP inference server behind `zeroshot serve`: one model in memory shared by all clients, a JSON API
// (docs/api.md), a web page at "/", Prometheus metrics, dynamic batching and hard limits on every input.
//
//   zeroshot::server::Server s(*model, opt);
//   int port = s.bind();        // opt.port 0: a free port
//   std::thread t([&] { s.run(); });
//   ...; s.stop(); t.join();     // graceful: in-flight requests finish, new ones are refused
//
// Every error is answered with a 4xx/5xx status and a JSON body {"error": "<one line>"}; the server stays up.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "zeroshot/zeroshot.h"

namespace zeroshot::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (bind() returns it)
  std::string api_key;            // non-empty: /v1/* and /metrics need "Authorization: Bearer <key>"
  std::string index_db;           // an index database (zeroshot index): enables /v1/search and thumbnails
  std::string embeddings_dir;     // or an embedding folder (zeroshot.inference + index-embeddings): /v1/search
  std::string embeddings_index;   // its index file ("": <embeddings_dir>/index.faiss)
  std::string policy_path;        // a moderation policy (TOML): enables /v1/moderate
  std::string label_cache_dir;    // ClassifierOptions::cache_dir ("" default folder, "none")
  std::string precision = "f32";  // reported by /v1/models (the model was loaded with it)
  // Dynamic batching.
  size_t max_batch = 16;  // 1: batching off
  int max_wait_ms = 5;
  size_t max_queue = 64;  // images waiting for the encoder; more: 503 + Retry-After
  // Limits.
  size_t max_body_bytes = 32u << 20;
  size_t max_labels = 1000;       // labels per request (a built-in set counts its classes)
  size_t max_label_bytes = 1000;  // one label or template
  size_t max_templates = 100;
  size_t max_texts = 256;         // /v1/embed texts per request
  size_t max_images = 32;         // /v1/embed images per request
  double request_timeout_s = 60;  // waiting for the encoder; then 504
  size_t http_threads = 32;       // requests handled at once (more wait for a thread; reading them costs none)
  // Clients (src/server/http.h): connections past these are closed at once; a request's headers and body must
  // arrive within their deadlines, or the connection is closed.
  size_t max_connections = 4096;
  size_t max_connections_per_client = 64;  // per client address
  double header_timeout_s = 10;
  double body_timeout_s = 60;
  size_t classifier_cache = 64;  // label-set classifiers kept (LRU)
  // Memory shared by all requests in flight (src/server/admission.h); past either: 503 + Retry-After.
  size_t max_inflight_body_bytes = 128u << 20;  // request bodies being parsed
  uint64_t max_inflight_pixels = 250'000'000;   // images being decoded (~7 bytes a pixel at the peak of a decode)
  uint64_t max_image_pixels = 100'000'000;      // the model's limit per image (ModelOptions::max_image_pixels)
  // Label embeddings of more prompts (labels x templates) are built on a thread of their own (label_builds.h);
  // until they are ready, requests for them are answered 503 + Retry-After.
  size_t inline_prompts = 1000;
  // Few-shot heads (zeroshot fit), by the name a /v1/classify request gives as "head"; each is refused at start-up
  // when fitted for another model.
  std::vector<std::pair<std::string, std::string>> heads;  // (name, file)
};

class Server {
 public:
  // Opens the index and the policy (throws zeroshot::Error naming them when they are bad); starts the encoder.
  Server(const Model& model, ServerOptions opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Encodes a built-in label set's prompts now, "SET" or "SET:TEMPLATES" ("imagenet:imagenet7"), so that requests
  // naming that set (and those templates; softmax, not multi_label) are answered from the classifier cache.
  // `note` (optional) is told what is encoded, before and after. Throws zeroshot::Error naming a bad spec.
  void preload_labels(const std::string& spec, const std::function<void(const std::string&)>& note = {});

  // Binds the listening socket; returns the port. Throws zeroshot::Error when it cannot.
  int bind();
  // Serves until stop(); returns when every in-flight request has been answered.
  void run();
  // Graceful stop, callable from any thread (not a signal handler): refuses new requests (503 on open
  // connections, the listening socket is closed), lets in-flight ones finish.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::server
