// Model::load for a GGUF file: the config from the metadata, every parameter
// bound in place from the memory map (F32, BF16, F16 and the ggml block types;
// no conversion), vectors and other types as F32 copies.
#include <cstring>

#include "huginn/common.h"
#include "huginn/gguf.h"
#include "huginn/model.h"
#include "model/arch.h"
#include "model/gguf_model.h"

namespace huginn {

std::unique_ptr<Model> Model::load_gguf(const std::string& path, const LoadOptions& o) {
  auto f = std::make_shared<const gguf::File>(path);
  std::unique_ptr<Model> m(new Model());
  m->gguf_ = f;
  m->cfg_ = gguf_model::read_config(*f);
  m->arch_ = &architecture_named(m->cfg_.arch);
  const ModelConfig& c = m->cfg_;
  auto shape_str = [](const std::vector<int64_t>& s) {
    return TensorView{"", DType::F32, s, nullptr, 0, ""}.shape_str();
  };
  m->w_ = m->arch_->bind(c, [&](const ParamSpec& p) -> Weight {
    const std::string gname = gguf_model::tensor_name(c, p.name);
    const gguf::Tensor* t = f->find_tensor(gname);
    if (!t) fail(path, ": tensor '", gname, "' (", p.name, ") is missing");
    if (t->shape() != p.shape)
      fail(path, ": tensor '", gname, "' has shape ", shape_str(t->shape()), ", the config needs ", shape_str(p.shape));
    m->dtypes_.push_back({p.name, quant::name(t->type)});
    int64_t rows = 1, cols = 1;
    if (p.shape.size() >= 2) {
      rows = p.shape[0];
      for (size_t i = 1; i < p.shape.size(); ++i) cols *= p.shape[i];
    } else if (p.shape.size() == 1) {
      cols = p.shape[0];
    }
    const bool matrix = p.shape.size() == 2;
    const bool aligned = reinterpret_cast<uintptr_t>(t->data) % 4 == 0;
    Weight w;
    if (t->type == quant::Type::F32 && aligned) {
      w = Weight{DType::F32, t->data, rows, cols};
    } else if (matrix && !o.convert_to_f32 && aligned && (t->type == quant::Type::BF16 || t->type == quant::Type::F16)) {
      w = Weight{t->type == quant::Type::BF16 ? DType::BF16 : DType::F16, t->data, rows, cols};
    } else if (matrix && !o.convert_to_f32 && t->type != quant::Type::BF16 && t->type != quant::Type::F16) {
      w = Weight::blocks(t->type, t->data, rows, cols);
    }
    if (w) {
      m->weight_bytes_ += t->nbytes;
      m->params_.push_back(w);
      return w;
    }
    m->owned_.push_back(f->to_f32(*t));
    release_mapped_pages(t->data, t->nbytes);  // the file's copy is not read again
    const size_t bytes = m->owned_.back().size() * sizeof(float);
    m->weight_bytes_ += bytes;
    m->converted_bytes_ += bytes;
    m->params_.push_back(Weight{DType::F32, m->owned_.back().data(), rows, cols});
    return m->params_.back();
  });
  if (const gguf::Tensor* lm = f->find_tensor("output.weight"); lm && c.tie_embeddings) {
    const std::vector<int64_t> want = {c.vocab_size, c.n_embd};
    if (lm->shape() != want) fail(path, ": tensor 'output.weight' has shape ", shape_str(lm->shape()));
  }
  const gguf::Tensor* fc = f->find_tensor(gguf_model::tensor_name(c, "freqs_cis"));
  if (fc) {
    std::vector<float> data = f->to_f32(*fc);
    const int half = c.head_dim / 2;
    // stored as [block_size, half * 2]; the HF checkpoint's shape is [1, block_size, 1, half, 2]
    const std::vector<int64_t> want = {c.block_size, 2 * half};
    if (fc->shape() != want)
      fail(path, ": tensor '", fc->name, "' has shape ", shape_str(fc->shape()), ", the config needs ", shape_str(want));
    TensorView tv{"freqs_cis", DType::F32, {1, c.block_size, 1, half, 2}, reinterpret_cast<const uint8_t*>(data.data()),
                  data.size() * sizeof(float), path};
    m->build_rope(&tv);
  } else {
    m->build_rope(nullptr);
  }
  return m;
}

}  // namespace huginn
