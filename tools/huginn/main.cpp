// huginn: one program, many subcommands (see commands.h).
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/threads.h"
#include "huginn/tokenizer.h"

namespace huginn::cli {

std::vector<Command>& commands() {
  static std::vector<Command> c;
  return c;
}

std::string human_bytes(double bytes) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (bytes >= 1024 && i < 4) {
    bytes /= 1024;
    ++i;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %s", bytes, u[i]);
  return buf;
}

CLI::Option* add_seed_option(CLI::App& app, uint64_t& seed, const std::string& help) {
  return app.add_option("--seed", seed, help)
      ->check(CLI::Validator(
          [](std::string& v) {
            uint64_t u = 0;
            const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), u);
            return v.empty() || ec != std::errc() || end != v.data() + v.size()
                       ? "must be a whole number in [0, 2^64), got '" + v + "'"
                       : std::string();
          },
          "UINT64"));
}

std::vector<int> parse_ids(const std::string& s) {
  std::vector<int> ids;
  for (long long v : parse_int_list(s, "token id")) {
    if (v < INT32_MIN || v > INT32_MAX) fail("invalid token id '", v, "'");
    ids.push_back((int)v);
  }
  return ids;
}

}  // namespace huginn::cli

namespace {
// Peak resident set size of this process (Linux reports KiB).
long long peak_rss_bytes() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return (long long)u.ru_maxrss * 1024;
}

// An error is one line: control characters (a newline in a quoted value)
// become spaces, and the length is bounded.
std::string one_line(const char* what) {
  std::string s = what ? what : "";
  if (s.size() > 2000) s = s.substr(0, 2000) + "...";
  for (char& c : s)
    if ((unsigned char)c < 0x20 || c == 0x7f) c = ' ';
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace huginn::cli;
  CLI::App app{"huginn: run, study and train recurrent-depth (latent reasoning) language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "huginn 0.1.0");
  int threads = 0;
  app.add_option("-t,--threads", threads, "threads for compute (default: all cores)")
      ->check(CLI::Range(0, 1024));
  auto& cmds = commands();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::map<CLI::App*, std::function<int()>> runners;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runners[sub] = c.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here too (exit 0, as CLI11 prints them); a bad
    // command line is one error line and exit 1, like every other bad input.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "error: " << one_line(e.what()) << " (see --help)\n";
    return 1;
  }
  try {
    huginn::set_threads(threads);
    for (auto& [sub, run] : runners)
      if (sub->parsed()) {
        const int rc = run();
        // HUGINN_STATS=1: what the command read, for tests (the model's tokenizer is parsed once)
        if (const char* s = std::getenv("HUGINN_STATS"); s && *s && std::string(s) != "0")
          std::cerr << "stats: tokenizer.json parsed " << huginn::tokenizer_parse_count() << " time(s), peak RSS "
                    << peak_rss_bytes() << " bytes\n";
        return rc;
      }
  } catch (const huginn::Error& e) {
    std::cerr << "error: " << one_line(e.what()) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "error: out of memory\n";
    return 1;
  } catch (const std::length_error& e) {  // a size beyond what a container can hold
    std::cerr << "error: a size is too large (" << one_line(e.what()) << ")\n";
    return 1;
  } catch (const std::exception& e) {  // anything else: still one line, exit 1, never abort
    std::cerr << "error: " << one_line(e.what()) << "\n";
    return 1;
  } catch (...) {
    std::cerr << "error: unknown failure\n";
    return 1;
  }
  return 1;
}
