// zeroshot serve: the HTTP inference server (src/server/server.h; API in docs/api.md).
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigaction, which <csignal> does not promise
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cli_common.h"
#include "commands.h"
#include "index/embeddings.h"
#include "server/server.h"

namespace zeroshot::cli {

namespace {

int g_signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  (void)!::write(g_signal_pipe[1], &b, 1);
}

struct ServeArgs {
  ModelArgs model;
  std::string api_key_file;
  std::string label_cache;
  bool no_batching = false;
  double max_body_mb = 32;
  double max_inflight_body_mb = 128;
  double max_inflight_megapixels = 250;
  std::vector<std::string> preload_labels;
  std::vector<std::string> heads;  // --head NAME=FILE or FILE (named by its stem)
  bool quiet = false;
  server::ServerOptions opt;
};

std::string read_api_key(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path, "cannot read the API key file");
  std::string key;
  std::getline(f, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) key.pop_back();
  if (key.empty()) throw Error(path, "the API key file's first line is empty");
  return key;
}

int run(ServeArgs& a) {
  server::ServerOptions opt = a.opt;
  if (!a.api_key_file.empty()) opt.api_key = read_api_key(a.api_key_file);
  opt.label_cache_dir = a.label_cache;
  for (const auto& h : a.heads) {
    const size_t eq = h.find('=');
    if (eq == std::string::npos) opt.heads.emplace_back(std::filesystem::path(h).stem().string(), h);
    else opt.heads.emplace_back(h.substr(0, eq), h.substr(eq + 1));
  }
  opt.precision = a.model.precision;
  if (a.no_batching) opt.max_batch = 1, opt.max_wait_ms = 0;
  opt.max_body_bytes = static_cast<size_t>(std::llround(a.max_body_mb * 1024 * 1024));
  opt.max_inflight_body_bytes = static_cast<size_t>(std::llround(a.max_inflight_body_mb * 1024 * 1024));
  opt.max_inflight_pixels = static_cast<uint64_t>(std::llround(a.max_inflight_megapixels * 1e6));
  opt.max_image_pixels = static_cast<uint64_t>(std::llround(a.model.max_megapixels * 1e6));

  // SIGINT/SIGTERM: the handler only writes the signal's number to a pipe (async-signal-safe; any thread may take
  // the signal, OpenBLAS's included), a watcher thread reads it and stops the server gracefully. Before the server
  // runs, a signal just ends the process.
  if (::pipe(g_signal_pipe) != 0) throw Error("serve", "cannot create a pipe");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::atomic<server::Server*> serving{nullptr};
  std::thread watcher([&] {
    unsigned char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig == 0) return;  // woken by the guard below
    server::Server* s = serving.load();
    if (!s) std::_Exit(128 + sig);
    if (!a.quiet)
      std::fprintf(stderr, "zeroshot: %s: finishing requests in flight\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    s->stop();
  });
  struct Guard {  // on every way out: wake the watcher if it still waits for a signal, and join it
    std::thread& t;
    void finish() {
      if (!t.joinable()) return;
      const unsigned char zero = 0;
      (void)!::write(g_signal_pipe[1], &zero, 1);  // no effect when a signal came first: the watcher read once
      t.join();
    }
    ~Guard() { finish(); }
  } guard{watcher};

  // Every open connection is a file descriptor: raise the soft limit (often 1024) to what --max-connections needs,
  // as far as the hard limit allows.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    const rlim_t want = std::min<rlim_t>(nofile.rlim_max, static_cast<rlim_t>(opt.max_connections) + 256);
    if (nofile.rlim_cur < want) {
      nofile.rlim_cur = want;
      ::setrlimit(RLIMIT_NOFILE, &nofile);
    }
  }
  ModelArgs margs = a.model;
  if (!opt.embeddings_dir.empty() && (!margs.model_option || margs.model_option->count() == 0)) {
    // --embeddings without --model: the model recorded in the folder (the server checks it against the folder).
    const index::EmbeddingsPlan plan = index::read_embeddings_plan(opt.embeddings_dir);
    if (plan.model.empty())
      throw Error(opt.embeddings_dir, "no zeroshot-inference.json: name the model that made the embeddings (--model)");
    margs.model = plan.model;
    if (margs.precision == "f32" && !plan.precision.empty()) margs.precision = opt.precision = plan.precision;
  }
  auto model = margs.load(a.quiet);  // --precision is one of the model options
  server::Server srv(*model, opt);
  const int port = srv.bind();
  for (const auto& spec : a.preload_labels)  // before "serving": a request for the set is then answered at once
    srv.preload_labels(spec, [&](const std::string& line) {
      if (!a.quiet) std::fprintf(stderr, "zeroshot: %s\n", line.c_str());
    });
  std::printf("zeroshot: serving %s on http://%s:%d/\n", model->name().c_str(),
              opt.host.find(':') != std::string::npos ? ("[" + opt.host + "]").c_str() : opt.host.c_str(), port);
  std::fflush(stdout);
  serving = &srv;
  srv.run();
  guard.finish();  // the watcher may still be inside srv.stop()
  if (!a.quiet) std::fprintf(stderr, "zeroshot: stopped\n");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* c = app.add_subcommand("serve", "HTTP inference server: JSON API, web page, dynamic batching");
  a->model.add_to(*c);
  c->add_option("--index", a->opt.index_db, "An index database (zeroshot index): enables /v1/search and thumbnails");
  c->add_option("--embeddings", a->opt.embeddings_dir,
                "An embedding folder (zeroshot.inference's output, indexed by zeroshot index-embeddings): enables "
                "/v1/search over it; the model defaults to the one recorded there");
  c->add_option("--embeddings-index", a->opt.embeddings_index, "Its index file (default OUT/index.faiss)");
  c->add_option("--policy", a->opt.policy_path, "A moderation policy (TOML): enables /v1/moderate");
  c->add_option("--head", a->heads,
                "A few-shot head (zeroshot fit) as NAME=FILE, or FILE (named by its stem); /v1/classify requests "
                "with \"head\": NAME score with it instead of labels (repeatable)")
      ->allow_extra_args(false);
  c->add_option("--host", a->opt.host, "Address to listen on (0.0.0.0: every interface)")->default_val("127.0.0.1");
  c->add_option("--port", a->opt.port, "Port (0: any free port; the address is printed)")
      ->default_val(8080)
      ->check(CLI::Range(0, 65535));
  c->add_option("--api-key-file", a->api_key_file,
                "File whose first line is the API key: /v1/* and /metrics then need \"Authorization: Bearer KEY\"");
  c->add_option("--max-batch", a->opt.max_batch, "Images encoded together at most")
      ->default_val(16)
      ->check(CLI::Range(1, 1024));
  c->add_option("--max-wait-ms", a->opt.max_wait_ms, "How long the first image of a batch waits for others")
      ->default_val(5)
      ->check(CLI::Range(0, 60000));
  c->add_flag("--no-batching", a->no_batching, "Encode every image alone (--max-batch 1 --max-wait-ms 0)");
  c->add_option("--max-queue", a->opt.max_queue, "Images waiting for the encoder; beyond it: 503 + Retry-After")
      ->default_val(64)
      ->check(CLI::Range(1, 100000));
  c->add_option("--max-body-mb", a->max_body_mb, "Largest request body, MiB")
      ->default_val(32)
      ->check(CLI::Range(0.001, 4096.0));
  c->add_option("--max-inflight-body-mb", a->max_inflight_body_mb,
                "Request bodies handled at once, MiB in all; beyond it: 503 + Retry-After (one request alone always)")
      ->default_val(128)
      ->check(CLI::Range(0.001, 1e6));
  c->add_option("--max-inflight-megapixels", a->max_inflight_megapixels,
                "Image pixels decoded at once by all requests (read from the headers; ~7 bytes each at the peak of a "
                "decode); beyond it: 503 + Retry-After (one image alone always)")
      ->default_val(250)
      ->check(CLI::Range(0.001, 1e6));
  c->add_option("--preload-labels", a->preload_labels,
                "Encode a built-in label set at start-up, SET or SET:TEMPLATES (imagenet:imagenet7); repeatable. "
                "Otherwise a set of over 1000 prompts is encoded on first use while requests get 503 + Retry-After")
      ->type_name("SET[:TEMPLATES]")
      ->allow_extra_args(false);
  c->add_option("--max-labels", a->opt.max_labels, "Labels per request")
      ->default_val(1000)
      ->check(CLI::Range(1, 100000));
  c->add_option("--request-timeout", a->opt.request_timeout_s, "Seconds a request waits for the encoder; then 504")
      ->default_val(60)
      ->check(CLI::Range(0.001, 86400.0));
  c->add_option("--http-threads", a->opt.http_threads, "Requests handled at once (reading requests needs no thread)")
      ->default_val(32)
      ->check(CLI::Range(1, 4096));
  c->add_option("--max-connections", a->opt.max_connections, "Open connections at most (all clients)")
      ->default_val(4096)
      ->check(CLI::Range(1, 1000000));
  c->add_option("--max-connections-per-client", a->opt.max_connections_per_client,
                "Open connections at most from one client address")
      ->default_val(64)
      ->check(CLI::Range(1, 1000000));
  c->add_option("--header-timeout", a->opt.header_timeout_s, "Seconds a client has to send a request's headers")
      ->default_val(10)
      ->check(CLI::Range(0.1, 3600.0));
  c->add_option("--body-timeout", a->opt.body_timeout_s, "Seconds a client has to send a request's body")
      ->default_val(60)
      ->check(CLI::Range(0.1, 86400.0));
  c->add_option("--label-cache", a->label_cache,
                "Label-embedding disk cache folder, or none (default $XDG_CACHE_HOME/zeroshot)");
  c->add_flag("-q,--quiet", a->quiet, "No progress bar or notes");
  c->footer(
      "The API (classify, embed, search, moderate, models, metrics) is documented in docs/api.md; the web page is\n"
      "at /. The server binds 127.0.0.1 unless --host says otherwise, never fetches URLs, and on SIGTERM or\n"
      "SIGINT finishes the requests in flight and exits 0.");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
