// The fixture runner's adamw_step with a gradients_from case that stores only
// some gradient rows (grad_rows): the update is element-wise, so the rows of
// param_rows need only the same rows of the gradient (tests/data/golden/README.md).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "huginn/safetensors.h"
#include "test_util.h"

using namespace huginn;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
// A copy of tiny_bf16_sharded whose train_grad case stores, for every matrix,
// only the rows that the adamw_step case compares (minus `drop` for one).
fs::path partial_fixture(bool drop_one_row) {
  const fs::path src = fs::path(HUGINN_TEST_DATA) / "golden" / "tiny_bf16_sharded";
  const fs::path dir = test::temp_dir("golden-partial");
  for (auto& e : fs::directory_iterator(src)) fs::copy_file(e.path(), dir / e.path().filename());
  json top = json::parse(test::slurp(dir / "cases.json"));
  json* aw = nullptr;
  for (auto& c : top["cases"])
    if (c["kind"] == "adamw_step") aw = &c;
  json* gc = nullptr;
  for (auto& c : top["cases"])
    if (c["name"] == (*aw)["gradients_from"]) gc = &c;
  const TensorStore expected = TensorStore::open_file((dir / top["expected_file"].get<std::string>()).string());
  std::vector<std::vector<float>> keep;
  std::vector<TensorToWrite> out;
  for (const auto& [name, t] : expected.tensors()) {
    keep.push_back(t.to_f32());
    out.push_back({name, t.shape, keep.back().data(), DType::F32});
  }
  bool dropped = false;
  for (auto it = (*aw)["param_rows"].begin(); it != (*aw)["param_rows"].end(); ++it) {
    const std::string p = it.key();
    std::vector<size_t> rows = it->get<std::vector<size_t>>();
    if (drop_one_row && !dropped && rows.size() > 2) rows.erase(rows.begin() + 1), dropped = true;
    const TensorView& full = expected.get((*gc)["expected"]["grads"][p].get<std::string>());
    const size_t width = (size_t)(full.numel() / full.shape[0]);
    const std::vector<float> all = full.to_f32();
    std::vector<float> part;
    for (size_t r : rows) part.insert(part.end(), all.begin() + r * width, all.begin() + (r + 1) * width);
    keep.push_back(std::move(part));
    std::vector<int64_t> shape = full.shape;
    shape[0] = (int64_t)rows.size();
    out.push_back({"partial." + p, shape, keep.back().data(), DType::F32});
    (*gc)["grad_rows"][p] = rows;
    (*gc)["expected"]["grads"][p] = "partial." + p;
  }
  write_safetensors((dir / "expected_partial.safetensors").string(), out);
  top["expected_file"] = "expected_partial.safetensors";
  std::ofstream(dir / "cases.json", std::ios::trunc) << top.dump();
  return dir;
}
}  // namespace

TEST(GoldenPartial, AdamWFromPartialGradientRows) {
  const fs::path dir = partial_fixture(false);
  // Both the gradient case (checked on its stored rows) and the AdamW case pass.
  auto r = test::run_cli("golden " + dir.string() + " --case n0k3");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("2 passed, 0 failed"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(GoldenPartial, AdamWRowWithoutItsGradientIsAFailure) {
  const fs::path dir = partial_fixture(true);
  auto r = test::run_cli("golden " + dir.string() + " --case adamw");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("whose gradient the gradients_from case does not store"), std::string::npos) << r.out;
  fs::remove_all(dir);
}
