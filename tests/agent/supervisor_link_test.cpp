// SupervisorLink::attach against a stand-in supervisor socket: the blocking attach survives
// signals that interrupt its system calls (EINTR is retried, not reported as "cannot reach the
// supervisor"), and a supervisor that never says hello is given up on with an error.
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstring>
#include <string>
#include <thread>

#include "agent/supervisor.hpp"
#include "support/server_process.hpp"

namespace pa::agent {
namespace {

std::atomic<int> g_signals{0};
void count_signal(int) {
  g_signals.fetch_add(1);
}

// A listening AF_UNIX socket at paths.socket().
int listen_at(const RunPaths& paths) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, paths.socket().c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(fd, 4), 0);
  return fd;
}

TEST(SupervisorLinkAttach, SignalsDuringTheAttachDoNotFailIt) {
  // A handler without SA_RESTART: every blocking call it interrupts fails with EINTR. (It stays
  // installed: a signal still on its way after the test must not end the test binary.)
  struct sigaction sa {};
  sa.sa_handler = count_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, nullptr), 0);

  test::TempDir dir("pa-link");
  const RunPaths paths{dir.path().string()};
  const int listener = listen_at(paths);
  const pthread_t attacher = ::pthread_self();
  std::atomic<bool> attached{false};
  // The stand-in supervisor: accepts, reads the attach line, then holds the hello back while
  // the attaching thread is hit by signals, and answers only once several have landed.
  std::thread supervisor([&] {
    const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(conn, 0);
    char c = 0;
    while (::read(conn, &c, 1) == 1 && c != '\n') {
    }
    const int before = g_signals.load();
    while (g_signals.load() < before + 5 && !attached.load()) {
      ::pthread_kill(attacher, SIGUSR1);
      std::this_thread::yield();
    }
    const std::string hello = R"({"cli_pid":4242,"spool_size":0})"
                              "\n";
    // (MSG_NOSIGNAL: an attach that already gave up closed its end.)
    (void)::send(conn, hello.data(), hello.size(), MSG_NOSIGNAL);
    // Keep the connection until the link is built, then let it go.
    while (!attached.load()) std::this_thread::yield();
    ::close(conn);
  });

  boost::asio::io_context io;
  std::error_code ec;
  auto link = SupervisorLink::attach(
      io.get_executor(), io.get_executor(), paths, 0, 1 << 20,
      LinkHandlers{[](const SpoolRecord&) { return true; }, [](std::error_code) {}}, ec);
  attached = true;
  supervisor.join();
  ::close(listener);
  ASSERT_TRUE(link) << ec.message();
  EXPECT_FALSE(ec);
  EXPECT_EQ(link->cli_pid(), 4242);
  EXPECT_GE(g_signals.load(), 5);
  link->detach();
  io.run();
}

TEST(SupervisorLinkAttach, NoSupervisorListeningIsAnError) {
  test::TempDir dir("pa-link");
  const RunPaths paths{dir.path().string()};
  boost::asio::io_context io;
  std::error_code ec;
  auto link = SupervisorLink::attach(io.get_executor(), io.get_executor(), paths, 0, 1 << 20,
                                     LinkHandlers{}, ec);
  EXPECT_FALSE(link);
  EXPECT_TRUE(ec);
}

}  // namespace
}  // namespace pa::agent
