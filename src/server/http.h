// The HTTP transport under `zeroshot serve`: libmicrohttpd with one epoll event thread that reads every
// connection's headers and body, and a pool of worker threads for the handlers that take time (inference). An idle
// or slow socket costs a file descriptor and a buffer, never a thread, so slow clients cannot starve the others.
//
// Limits enforced here, before any handler runs:
//  - connections in all, and per client address (past either: accepted and closed at once);
//  - a deadline for a request's headers and one for its body, counted from the connection's first byte or the
//    previous answer (past one: the connection is closed);
//  - the body size: a Content-Length over the limit is answered 413 as soon as the headers are read, without reading
//    the body, and the connection is closed; a chunked body is answered 413 the moment it passes the limit.
// The listening socket is bound without SO_REUSEPORT: a port in use is an error, never a shared port.
//
// Thread safety: handle() runs concurrently on the workers and the event thread; stop() from any thread (not a
// signal handler).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/request.h"

namespace zeroshot::server {

struct HttpRequest {
  std::string method;
  std::string path;  // percent-decoded, without the query string
  std::vector<std::pair<std::string, std::string>> headers;
  bool multipart = false;   // multipart/form-data: the body is in parts
  std::string body;         // !multipart
  std::vector<Part> parts;  // multipart
  // The first header of that name (case-insensitive); "" when absent.
  std::string header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  const void* static_body = nullptr;  // instead of body: data that outlives the server (not copied)
  size_t static_size = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
};

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: a free port
  size_t max_body_bytes = 32u << 20;
  size_t workers = 32;            // handlers running at once
  size_t max_connections = 4096;  // open connections in all
  size_t max_connections_per_client = 64;
  double header_timeout_s = 10;  // a request's headers must arrive within this
  double body_timeout_s = 60;    // its body within this, once the headers are in
  unsigned idle_timeout_s = 10;  // a silent connection (keep-alive included) is closed after this
};

struct HttpHandlers {
  // True: run handle() on a worker thread (it may take time); false: on the event thread (quick, no waiting).
  std::function<bool(const HttpRequest&)> on_worker;
  // Fills the answer; must not throw.
  std::function<void(const HttpRequest&, HttpResponse*)> handle;
  // Fills the answer to an error the transport finds itself (413, 400 malformed body, 503 shutting down).
  std::function<void(int status, const std::string& message, HttpResponse*)> error;
  // Once per answered request, after its answer was handed to the socket; seconds from the end of its headers.
  std::function<void(const HttpRequest&, const HttpResponse&, double seconds)> log;
};

class HttpServer {
 public:
  HttpServer(HttpOptions opt, HttpHandlers handlers);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; returns the port. Throws zeroshot::Error("<host>:<port>", ...) when the port is in use or
  // the address is not one of this machine's.
  int bind();
  // Serves until stop(); returns once every request in flight has been answered.
  void run();
  // Graceful: the listening socket is closed, new requests on open connections get 503 + Connection: close,
  // requests in flight finish. Callable before run() starts.
  void stop();
  // Requests whose headers have been read and whose answer has not yet been sent.
  size_t in_flight() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace zeroshot::server
