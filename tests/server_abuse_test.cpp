// The server's HTTP layer under hostile clients, over loopback with raw sockets: slow headers and slow bodies do not
// starve other clients, header and body deadlines close late connections, connections per client address are
// capped, oversized bodies get 413 at once (Content-Length: before the body is read; chunked: when the limit is
// passed), a wrong method on a known route gets 405 with Allow, and a second server on a port in use fails with
// a one-line error naming the port (in-process and `zeroshot serve`). Bounded: at most 100 connections, a few
// seconds each.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "eval/thumbnail.h"
#include "server/server.h"
#include "support/model.h"
#include "support/server.h"
#include "zeroshot/error.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using nlohmann::json;
namespace zs = zeroshot::server;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kModelDir = std::string(ZEROSHOT_FIXTURES) + "/clip/clip-tiny-quickgelu";

const zeroshot::Model& model() { return zeroshot::testing::shared_model(kModelDir, 1); }

std::string classify_body() {
  std::ifstream f(std::string(ZEROSHOT_FIXTURES) + "/images/rocket.jpg", std::ios::binary);
  const std::string s{std::istreambuf_iterator<char>(f), {}};
  const std::string b64 = zeroshot::eval::base64(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  return json{{"image", b64}, {"candidate_labels", {"a rocket", "a cat"}}}.dump();
}

struct Running : zeroshot::testing::RunningServer {
  explicit Running(zs::ServerOptions opt) : RunningServer(model(), std::move(opt)) {}
};

// A raw loopback connection from `source` (any 127.0.0.0/8 address: a distinct client address each).
struct Sock {
  int fd = -1;
  Sock(int port, const std::string& source = "127.0.0.1") {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, source.c_str(), &a.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close();
      return;
    }
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) close();
  }
  ~Sock() { close(); }
  Sock(const Sock&) = delete;
  Sock& operator=(const Sock&) = delete;
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  bool send(const std::string& s) const { return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size()); }
  // Everything readable within `seconds`, until the peer closes; *closed tells whether it did.
  std::string read(double seconds, bool* closed = nullptr) const {
    std::string out;
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    bool eof = false;
    while (Clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      const int left = int(std::chrono::duration<double, std::milli>(end - Clock::now()).count()) + 1;
      if (::poll(&p, 1, left) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        eof = true;
        break;
      }
      out.append(buf, size_t(n));
    }
    if (closed) *closed = eof;
    return out;
  }
};

int status_of(const std::string& response) {
  return response.rfind("HTTP/1.", 0) == 0 && response.size() > 12 ? std::atoi(response.c_str() + 9) : 0;
}

// /healthz and /v1/classify of a normal client, each on a new connection, within 5 s (starved, they would wait for
// ever).
void expect_normal_client_served(int port, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(5, 0);
  const auto h = c.Get("/healthz");
  ASSERT_TRUE(h) << httplib::to_string(h.error());
  EXPECT_EQ(h->status, 200);
  const auto r = c.Post("/v1/classify", body, "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace

TEST(ServerAbuse, SlowHeadersAndSlowBodiesDoNotStarveOtherClients) {
  zs::ServerOptions opt;
  opt.http_threads = 8;
  Running s(opt);
  const std::string body = classify_body();
  expect_normal_client_served(s.port, body);  // warm: the labels are encoded
  std::vector<std::unique_ptr<Sock>> slow;
  for (int i = 0; i < 100; ++i) {  // 10 client addresses, 10 connections each: under the per-address cap
    slow.push_back(std::make_unique<Sock>(s.port, "127.0.1." + std::to_string(1 + i / 10)));
    ASSERT_GE(slow.back()->fd, 0);
    if (i % 2 == 0) {
      slow.back()->send("POST /v1/classify HTTP/1.1\r\nHost: x\r\nX-Slow: ");  // headers never finished
    } else {
      slow.back()->send(
          "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          "Content-Length: 100000\r\n\r\n{\"image\": \"");  // a body never finished
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int round = 0; round < 3; ++round) {
    for (auto& k : slow) k->send("a");
    expect_normal_client_served(s.port, body);
  }
}

TEST(ServerAbuse, HeaderAndBodyDeadlinesCloseTrickles) {
  zs::ServerOptions opt;
  opt.header_timeout_s = 1;
  opt.body_timeout_s = 1;
  Running s(opt);
  Sock headers(s.port), bodies(s.port);
  headers.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  bodies.send("POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{");
  // A byte every 200 ms: never idle, never done. Both must be closed by their deadlines (1 s), well before 3 s.
  const auto t0 = Clock::now();
  bool headers_closed = false, bodies_closed = false;
  while (Clock::now() - t0 < std::chrono::seconds(3) && !(headers_closed && bodies_closed)) {
    if (!headers_closed) headers.send("a");
    if (!bodies_closed) bodies.send("a");
    if (!headers_closed) headers.read(0.2, &headers_closed);
    if (!bodies_closed) bodies.read(0.01, &bodies_closed);
  }
  EXPECT_TRUE(headers_closed) << "a request's headers trickled past the 1 s deadline";
  EXPECT_TRUE(bodies_closed) << "a request's body trickled past the 1 s deadline";
  EXPECT_GE(Clock::now() - t0, std::chrono::milliseconds(800));
}

TEST(ServerAbuse, ConnectionsPerClientAddressAreCapped) {
  zs::ServerOptions opt;
  opt.max_connections_per_client = 4;
  Running s(opt);
  std::vector<std::unique_ptr<Sock>> socks;
  socks.reserve(10);
  for (int i = 0; i < 10; ++i) socks.push_back(std::make_unique<Sock>(s.port, "127.0.2.1"));
  int closed_count = 0;
  for (auto& k : socks) {
    bool closed = false;
    if (k->fd < 0) closed = true;
    else k->read(0.3, &closed);
    closed_count += closed;
  }
  EXPECT_EQ(closed_count, 6);
  // Another address is not affected.
  httplib::Client c("127.0.0.1", s.port);
  c.set_read_timeout(2, 0);
  const auto h = c.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST(ServerAbuse, OversizedBodiesAre413AtOnce) {
  zs::ServerOptions opt;
  opt.max_body_bytes = 1 << 20;
  Running s(opt);
  {  // Content-Length over the limit: 413 with no body byte sent, then the connection is closed.
    Sock k(s.port);
    const auto t0 = Clock::now();
    k.send(
        "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
        "2147483648\r\n\r\n");
    bool closed = false;
    const std::string r = k.read(3, &closed);
    EXPECT_EQ(status_of(r), 413) << r;
    EXPECT_NE(r.find("over the limit of 1048576 bytes"), std::string::npos) << r;
    EXPECT_TRUE(closed);
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
  }
  {  // Expect: 100-continue is not answered 100 when the body is too large.
    Sock k(s.port);
    k.send("POST /v1/embed HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n");
    const std::string r = k.read(1.5);
    EXPECT_EQ(status_of(r), 413) << r;
  }
  {  // A chunked body: 413 once it passes the limit (not 400), while the client is still sending.
    Sock k(s.port);
    k.send(
        "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: "
        "chunked\r\n\r\n");
    const std::string chunk(64 * 1024, 'A');
    std::string r;
    for (int i = 0; i < 40 && r.empty(); ++i) {  // 2.5 MiB at most
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
      if (!k.send(size + chunk + "\r\n")) break;
      r = k.read(0.02);
    }
    if (r.empty()) r = k.read(1.5);
    EXPECT_EQ(status_of(r), 413) << r;
  }
  // Under the limit still works.
  httplib::Client c("127.0.0.1", s.port);
  const auto ok = c.Post("/v1/classify", classify_body(), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST(ServerAbuse, WrongMethodOnAKnownRouteIs405WithAllow) {
  Running s(zs::ServerOptions{});
  httplib::Client c("127.0.0.1", s.port);
  auto r = c.Get("/v1/classify");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405) << r->body;
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
  EXPECT_NE(r->body.find("\"error\""), std::string::npos) << r->body;
  r = c.Post("/healthz", "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "GET, HEAD");
  r = c.Delete("/v1/thumbnail/3");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  r = c.Get("/v1/nothing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.Head("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(ServerAbuse, APortInUseIsAnErrorNamingThePort) {
  Running first(zs::ServerOptions{});
  zs::ServerOptions opt;
  opt.port = first.port;
  opt.label_cache_dir = "none";
  zs::Server second(model(), opt);
  try {
    second.bind();
    FAIL() << "a second server bound port " << first.port;
  } catch (const zeroshot::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(std::to_string(first.port)), std::string::npos) << m;
    EXPECT_NE(m.find("in use"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }

  // `zeroshot serve` on that port: a one-line error on stderr naming the port, a non-zero exit.
  const std::string bin = std::string(ZEROSHOT_BINARY_DIR) + "/zeroshot";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " not built";
  const std::string cmd = bin + " serve --model " + kModelDir + " --port " + std::to_string(first.port) +
                          " --threads 1 --label-cache none -q 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  EXPECT_NE(WEXITSTATUS(status), 0) << out;
  EXPECT_NE(out.find(std::to_string(first.port)), std::string::npos) << out;
  EXPECT_NE(out.find("in use"), std::string::npos) << out;
  EXPECT_EQ(out.find("serving"), std::string::npos) << out;
}
