// Subcommand registry: each tools/huginn/cmd_*.cpp registers itself, so adding
// a command touches no other file.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace huginn::cli {

// Given its CLI11 subcommand, a command adds its options and returns the
// function that runs it (exit code).
using Setup = std::function<std::function<int()>(CLI::App&)>;

struct Command {
  std::string name, help;
  Setup setup;
};
std::vector<Command>& commands();

struct Register {
  Register(std::string name, std::string help, Setup setup) {
    commands().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

// "1.50 MiB": a byte count for people.
std::string human_bytes(double bytes);

// Parses a token list "1,2,3" or "[1, 2, 3]" into ids.
std::vector<int> parse_ids(const std::string& s);

// --seed for every command: a whole number in [0, 2^64), as the server's "seed" (CLI11
// alone would wrap -1 to 2^64 - 1).
CLI::Option* add_seed_option(CLI::App& app, uint64_t& seed, const std::string& help);

}  // namespace huginn::cli
