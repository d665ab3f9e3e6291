// An in-process zeroshot::server::Server on a free loopback port, run on its own thread and stopped gracefully at
// the end of the scope. The label-embedding disk cache is off so tests never share state through the disk.
// Header-only: only tests that link zs_server include it.
#pragma once

#include <httplib.h>

#include <string>
#include <thread>
#include <vector>

#include "server/server.h"

namespace zeroshot::testing {

struct RunningServer {
  server::Server server;
  int port = 0;
  std::thread thread;

  RunningServer(const Model& model, server::ServerOptions opt, const std::vector<std::string>& preload_labels = {})
      : server(model, [&] {
          opt.port = 0;
          opt.label_cache_dir = "none";
          return opt;
        }()) {
    for (const auto& p : preload_labels) server.preload_labels(p);
    port = server.bind();
    thread = std::thread([this] { server.run(); });
  }
  ~RunningServer() {
    server.stop();
    thread.join();
  }
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;

  // A keep-alive client (one connection: the server logs a request before it reads the next one).
  httplib::Client client(int read_timeout_s = 60) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(read_timeout_s, 0);
    c.set_keep_alive(true);
    return c;
  }
};

}  // namespace zeroshot::testing
