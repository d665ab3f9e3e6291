#include "server/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include "zeroshot/error.h"

namespace zeroshot::server {

namespace {

using Clock = std::chrono::steady_clock;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// One open connection, as the deadline reaper sees it. Phases: waiting for a request's headers (since the
// connection opened or the previous answer), reading its body (since the headers), busy (no deadline: the handler
// has its own timeout).
struct Conn {
  enum Phase { kHeaders, kBody, kBusy } phase = kHeaders;
  Clock::time_point since = Clock::now();
  int fd = -1;
  bool reaped = false;
};

// One request, from the end of its headers to its answer (MHD's per-request context).
struct Req {
  HttpRequest req;
  HttpResponse res;
  Clock::time_point start = Clock::now();
  Conn* conn = nullptr;
  MHD_PostProcessor* post = nullptr;
  size_t body_bytes = 0;
  bool malformed = false;   // the multipart body did not parse
  bool dispatched = false;  // handed to a worker (the connection is suspended until it is done)
  bool ready = false;       // res is filled: queue it
  bool answered = false;    // an answer was queued or written: log it
};

// A fixed set of threads running queued jobs (not cpp-httplib's or nn's pool: this one must never run a job on the
// caller's thread, which is the event thread).
class Workers {
 public:
  explicit Workers(size_t n) {
    for (size_t i = 0; i < std::max<size_t>(1, n); ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> l(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return done_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool done_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return "";
}

struct HttpServer::Impl {
  HttpOptions opt;
  HttpHandlers h;
  int listen_fd = -1;
  MHD_Daemon* daemon = nullptr;
  std::unique_ptr<Workers> workers;

  std::mutex mu;  // conns, stopping
  std::condition_variable cv;
  std::list<Conn> conns;
  bool stopping = false;
  bool reaper_done = false;  // set once the requests in flight are done: a slow body must not hold up a stop
  std::atomic<bool> draining{false};
  std::atomic<size_t> in_flight{0};

  std::thread reaper;

  void set_phase(Conn* c, Conn::Phase p) {
    if (!c) return;
    std::lock_guard<std::mutex> l(mu);
    c->phase = p;
    c->since = Clock::now();
  }

  // Closes the sockets of connections past their header or body deadline. shutdown(), not close(): the event
  // thread sees the end of the stream and closes the connection itself (the fd stays valid until its "closed"
  // notification, which takes `mu` first).
  void reap_loop() {
    std::unique_lock<std::mutex> l(mu);
    while (!cv.wait_for(l, std::chrono::milliseconds(250), [this] { return reaper_done; })) {
      const auto now = Clock::now();
      for (Conn& c : conns) {
        if (c.reaped || c.phase == Conn::kBusy) continue;
        const double limit = c.phase == Conn::kHeaders ? opt.header_timeout_s : opt.body_timeout_s;
        if (std::chrono::duration<double>(now - c.since).count() > limit) {
          ::shutdown(c.fd, SHUT_RDWR);
          c.reaped = true;
        }
      }
    }
  }

  MHD_Result queue(MHD_Connection* c, Req* r) {
    const HttpResponse& res = r->res;
    MHD_Response* m = res.static_body ? MHD_create_response_from_buffer(
                                            res.static_size, const_cast<void*>(res.static_body), MHD_RESPMEM_PERSISTENT)
                                      : MHD_create_response_from_buffer(
                                            res.body.size(), const_cast<char*>(res.body.data()), MHD_RESPMEM_MUST_COPY);
    if (!m) return MHD_NO;
    if (!res.content_type.empty()) MHD_add_response_header(m, "Content-Type", res.content_type.c_str());
    for (const auto& [k, v] : res.headers) MHD_add_response_header(m, k.c_str(), v.c_str());
    const MHD_Result ok = MHD_queue_response(c, static_cast<unsigned>(res.status), m);
    MHD_destroy_response(m);
    r->answered = ok == MHD_YES;
    return ok;
  }

  MHD_Result answer_error(MHD_Connection* c, Req* r, int status, const std::string& message, bool close) {
    r->res = HttpResponse{};
    h.error(status, message, &r->res);
    r->res.status = status;
    if (close) r->res.set_header("Connection", "close");
    return queue(c, r);
  }

  // A chunked body past the limit: libmicrohttpd 0.9 queues answers only before a body is read or after all of it
  // (an answer now is refused), so the 413 is written to the socket here (nothing else is being written on it while
  // a body is read) and the connection is then closed by returning MHD_NO.
  MHD_Result refuse_mid_body(Req* r, const std::string& message) {
    h.error(413, message, &r->res);
    r->res.status = 413;
    std::string out = "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Type: " + r->res.content_type +
                      "\r\nContent-Length: " + std::to_string(r->res.body.size()) + "\r\n\r\n" + r->res.body;
    if (r->conn) {
      size_t at = 0;
      for (int tries = 0; at < out.size() && tries < 100; ++tries) {
        const ssize_t n = ::send(r->conn->fd, out.data() + at, out.size() - at, MSG_NOSIGNAL);
        if (n > 0) {
          at += static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        } else {
          break;
        }
      }
      ::shutdown(r->conn->fd, SHUT_WR);
    }
    r->answered = true;
    return MHD_NO;
  }

  std::string too_large() const {
    return "request body over the limit of " + std::to_string(opt.max_body_bytes) + " bytes";
  }

  MHD_Result on_request(MHD_Connection* c, const char* url, const char* method, const char* upload, size_t* upload_size,
                        void** ctx) {
    auto* r = static_cast<Req*>(*ctx);
    if (!r) {  // the headers are in
      r = new Req;
      *ctx = r;
      ++in_flight;
      r->req.method = method;
      r->req.path = url;
      MHD_get_connection_values(
          c, MHD_HEADER_KIND,
          [](void* cls, MHD_ValueKind, const char* k, const char* v) {
            static_cast<HttpRequest*>(cls)->headers.emplace_back(k, v ? v : "");
            return MHD_YES;
          },
          &r->req);
      if (const MHD_ConnectionInfo* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT))
        r->conn = static_cast<Conn*>(i->socket_context);
      set_phase(r->conn, Conn::kBody);
      if (draining) return answer_error(c, r, 503, "the server is shutting down", true);
      const std::string length = r->req.header("Content-Length");
      if (!length.empty()) {
        uint64_t n = 0;
        const auto p = std::from_chars(length.data(), length.data() + length.size(), n);
        if (p.ec == std::errc() && n > opt.max_body_bytes) return answer_error(c, r, 413, too_large(), true);
      }
      const std::string type = r->req.header("Content-Type");
      if (type.size() >= 19 && iequals(std::string_view(type).substr(0, 19), "multipart/form-data")) {
        r->req.multipart = true;
        r->post = MHD_create_post_processor(c, 64 * 1024, &Impl::on_part, r);
        if (!r->post) return answer_error(c, r, 400, "malformed multipart/form-data header", true);
      }
      return MHD_YES;
    }
    if (*upload_size != 0) {
      r->body_bytes += *upload_size;
      if (r->body_bytes > opt.max_body_bytes) return refuse_mid_body(r, too_large());
      if (r->post) {
        if (!r->malformed && MHD_post_process(r->post, upload, *upload_size) != MHD_YES) r->malformed = true;
      } else {
        r->req.body.append(upload, *upload_size);
      }
      *upload_size = 0;
      return MHD_YES;
    }
    if (r->ready) return queue(c, r);
    if (r->dispatched) return MHD_YES;  // resumed spuriously: the worker is not done
    set_phase(r->conn, Conn::kBusy);
    if (r->post) {
      if (MHD_destroy_post_processor(r->post) != MHD_YES) r->malformed = true;
      r->post = nullptr;
    }
    if (draining) return answer_error(c, r, 503, "the server is shutting down", true);
    if (r->malformed) return answer_error(c, r, 400, "malformed multipart/form-data body", false);
    if (!h.on_worker(r->req)) {
      h.handle(r->req, &r->res);
      return queue(c, r);
    }
    r->dispatched = true;
    MHD_suspend_connection(c);
    workers->post([this, r, c] {
      h.handle(r->req, &r->res);
      r->ready = true;
      MHD_resume_connection(c);
    });
    return MHD_YES;
  }

  // multipart/form-data: each part arrives in pieces; a piece at offset 0 starts a part, unless the previous call
  // opened the same part with no data.
  static MHD_Result on_part(void* cls, MHD_ValueKind, const char* key, const char* filename, const char* content_type,
                            const char*, const char* data, uint64_t off, size_t size) {
    auto* r = static_cast<Req*>(cls);
    auto& parts = r->req.parts;
    const std::string name = key ? key : "";
    const bool continues =
        !parts.empty() && parts.back().name == name && (off != 0 || (parts.back().content.empty() && off == 0));
    if (!continues) parts.push_back(Part{name, filename ? filename : "", content_type ? content_type : "", ""});
    parts.back().content.append(data, size);
    return MHD_YES;
  }

  void on_completed(void** ctx) {
    auto* r = static_cast<Req*>(*ctx);
    if (!r) return;
    *ctx = nullptr;
    if (r->post) MHD_destroy_post_processor(r->post);
    set_phase(r->conn, Conn::kHeaders);  // keep-alive: the next request's headers are due from now
    if (r->answered && h.log) h.log(r->req, r->res, std::chrono::duration<double>(Clock::now() - r->start).count());
    delete r;
    {
      std::lock_guard<std::mutex> l(mu);
      --in_flight;
    }
    cv.notify_all();
  }

  void on_connection(MHD_Connection* c, void** socket_ctx, MHD_ConnectionNotificationCode code) {
    std::lock_guard<std::mutex> l(mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      conns.emplace_back();
      Conn* k = &conns.back();
      if (const MHD_ConnectionInfo* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD))
        k->fd = i->connect_fd;
      *socket_ctx = k;
    } else if (auto* k = static_cast<Conn*>(*socket_ctx)) {
      for (auto it = conns.begin(); it != conns.end(); ++it)
        if (&*it == k) {
          conns.erase(it);
          break;
        }
      *socket_ctx = nullptr;
    }
  }
};

HttpServer::HttpServer(HttpOptions opt, HttpHandlers handlers) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(opt);
  impl_->h = std::move(handlers);
}

HttpServer::~HttpServer() {
  if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
}

size_t HttpServer::in_flight() const { return impl_->in_flight.load(); }

int HttpServer::bind() {
  Impl& s = *impl_;
  const std::string where = s.opt.host + ":" + std::to_string(s.opt.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(s.opt.host.c_str(), std::to_string(s.opt.port).c_str(), &hints, &found) != 0 || !found)
    throw Error(where, "cannot listen: not an address of this machine");
  int err = 0;
  for (addrinfo* a = found; a && s.listen_fd < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    // SO_REUSEADDR lets a restarted server take its port while old connections linger in TIME_WAIT; on Linux it
    // never lets two sockets listen on one port (SO_REUSEPORT would: it is not set).
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      s.listen_fd = fd;
    } else {
      err = errno;
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (s.listen_fd < 0) {
    if (err == EADDRINUSE)
      throw Error(where, "port " + std::to_string(s.opt.port) + " is in use (another server listens there); " +
                             "stop it or choose another port");
    throw Error(where, std::string("cannot listen: ") + std::strerror(err));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(s.listen_fd, reinterpret_cast<sockaddr*>(&bound), &len);
  return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

void HttpServer::run() {
  Impl& s = *impl_;
  if (s.listen_fd < 0) bind();
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.stopping) return;
  }
  s.workers = std::make_unique<Workers>(s.opt.workers);
  const auto access = [](void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                         const char* upload, size_t* upload_size, void** ctx) {
    return static_cast<Impl*>(cls)->on_request(c, url, method, upload, upload_size, ctx);
  };
  const auto completed = [](void* cls, MHD_Connection*, void** ctx, MHD_RequestTerminationCode) {
    static_cast<Impl*>(cls)->on_completed(ctx);
  };
  const auto connection = [](void* cls, MHD_Connection* c, void** socket_ctx, MHD_ConnectionNotificationCode code) {
    static_cast<Impl*>(cls)->on_connection(c, socket_ctx, code);
  };
  s.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, nullptr,
                              nullptr, +access, &s, MHD_OPTION_LISTEN_SOCKET, s.listen_fd, MHD_OPTION_CONNECTION_LIMIT,
                              static_cast<unsigned>(s.opt.max_connections), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                              static_cast<unsigned>(s.opt.max_connections_per_client), MHD_OPTION_CONNECTION_TIMEOUT,
                              s.opt.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(64 * 1024),
                              MHD_OPTION_NOTIFY_COMPLETED, +completed, &s, MHD_OPTION_NOTIFY_CONNECTION, +connection,
                              &s, MHD_OPTION_END);
  if (!s.daemon) {
    s.workers.reset();
    throw Error(s.opt.host + ":" + std::to_string(s.opt.port), "cannot start the HTTP server");
  }
  s.reaper = std::thread([&s] { s.reap_loop(); });
  std::unique_lock<std::mutex> l(s.mu);
  s.cv.wait(l, [&s] { return s.stopping; });
  l.unlock();
  // Stop accepting (the listening socket is ours: close it so that new connections are refused), let the requests
  // in flight finish, then close every connection.
  MHD_quiesce_daemon(s.daemon);
  ::close(s.listen_fd);
  s.listen_fd = -1;
  l.lock();
  s.cv.wait(l, [&s] { return s.in_flight.load() == 0; });
  s.reaper_done = true;
  l.unlock();
  s.cv.notify_all();
  s.reaper.join();
  MHD_stop_daemon(s.daemon);
  s.daemon = nullptr;
  s.workers.reset();
}

void HttpServer::stop() {
  Impl& s = *impl_;
  s.draining = true;
  {
    std::lock_guard<std::mutex> l(s.mu);
    s.stopping = true;
  }
  s.cv.notify_all();
}

}  // namespace zeroshot::server
